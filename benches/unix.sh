#!/usr/bin/env bash
# Unix-domain listeners beside TCP ones (issue 22's measurements), in a private network
# namespace (root): 10,000 TCP + 10,000 Unix listeners held by one process;
#  - `snapshot --no-processes` against `ss -ltnm` + `ss -xlm` (the same data), alternating,
#    median of the per-round ratios;
#  - `snapshot` (every holding process named) against `ss -ltnmp` + `ss -xlmp`;
#  - `watch --sample-interval 10ms` over 1,000 TCP + 1,000 Unix listeners: CPU share of one
#    core and RSS at the start and the end.
# A measurement, not a test.
#   usage: benches/unix.sh [RUNS] [WATCH_SECONDS]   (default 9 rounds, 30 s)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-9}
secs=${2:-30}
cargo build --release --quiet
bin=$PWD/target/release/backlogctl
if [ "$(id -u)" != 0 ]; then echo "skipped: needs root for unshare -n"; exit 0; fi
exec unshare -n bash -s "$bin" "$runs" "$secs" <<'INNER'
set -euo pipefail
bin=$1 runs=$2 secs=$3
ip link set lo up
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
# One process per family (the descriptor limit is 20,000): N_TCP N_UNIX READY_FILE.
cat > "$dir/hold.py" <<'PY'
import socket, sys, time
n_tcp, n_unix, d, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ls = []
for p in range(20000, 20000 + n_tcp):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", p)); s.listen(64); ls.append(s)
for i in range(n_unix):
    s = socket.socket(socket.AF_UNIX); s.bind(f"{d}/{ready.rsplit('/',1)[-1]}-{i}.sock"); s.listen(64); ls.append(s)
open(ready, "w").close()
time.sleep(3600)
PY
hold() { # N_TCP N_UNIX READY
    python3 "$dir/hold.py" "$1" 0 "$dir" "$3.tcp" &
    python3 "$dir/hold.py" 0 "$2" "$dir" "$3.unix" &
}
wait_for() { for _ in $(seq 600); do [ -e "$1" ] && return; sleep 0.1; done; echo "no $1" >&2; exit 1; }
hold 10000 10000 "$dir/big"
wait_for "$dir/big.tcp"; wait_for "$dir/big.unix"
python3 - "$runs" "$bin" <<'PY'
import subprocess, sys, time, statistics
runs, bin = int(sys.argv[1]), sys.argv[2]
def t(cmds):
    start = time.perf_counter()
    for c in cmds:
        subprocess.run(c.split(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start
def rss(cmd):
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd.split(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return int(r.stderr.strip().splitlines()[-1]) / 1024
pairs = [
    ("snapshot --window 0 --no-processes", [f"{bin} snapshot --window 0 --no-processes"], ["ss -ltnm", "ss -xlm"]),
    ("snapshot --window 0 (processes named)", [f"{bin} snapshot --window 0"], ["ss -ltnmp", "ss -xlmp"]),
]
print("10,000 TCP + 10,000 Unix listeners in one process:")
for label, ours, theirs in pairs:
    a, b, ratios = [], [], []
    for _ in range(runs):
        x = t(ours); y = t(theirs)
        a.append(x); b.append(y); ratios.append(x / y)
    print(f"  {label:<40} {statistics.median(a)*1000:7.1f} ms vs {' + '.join(theirs):<22} {statistics.median(b)*1000:7.1f} ms: median ratio {statistics.median(ratios):.2f}x; peak RSS {rss(ours[0]):.1f} MiB")
PY
kill %1 %2 2>/dev/null || true
hold 1000 1000 "$dir/small"
wait_for "$dir/small.tcp"; wait_for "$dir/small.unix"
/usr/bin/time -f '%U %S %e %M' -o "$dir/time" "$bin" watch --json --sample-interval 10ms \
    --duration "${secs}s" > "$dir/watch.json" &
timer=$!
sleep 1
pid=$(pgrep -P "$timer")
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
sleep 4; early=$(rss)
sleep $((secs - 7)); late=$(rss)
wait "$timer"
read -r user sys wall maxrss < "$dir/time"
python3 - "$dir/watch.json" "$user" "$sys" "$wall" "$maxrss" "$early" "$late" <<'PY'
import json, sys
path, u, s, w, m, early, late = sys.argv[1], *map(float, sys.argv[2:])
lines = [json.loads(l) for l in open(path) if l.startswith("{")]
refreshes = [l for l in lines if "listeners" in l and "time" in l]
unix = sum(1 for r in refreshes[-1]["listeners"] if isinstance(r["local"], dict)) if refreshes else 0
period = refreshes[-1]["sample_interval_us"] / 1000 if refreshes else 0
print(f"watch over 1,000 TCP + 1,000 Unix listeners ({unix} Unix rows), {w:.0f} s: "
      f"{100*(u+s)/w:.2f}% of one core (user {u:.2f}s sys {s:.2f}s), sampling every {period} ms; "
      f"RSS {early/1024:.2f} MiB after 5 s, {late/1024:.2f} MiB near the end, peak {m/1024:.1f} MiB")
PY
INNER
