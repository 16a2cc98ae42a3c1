#!/usr/bin/env bash
# `watch`'s hot set (issue 32), in a private network namespace (root): 1,000 TCP + 1,000 Unix
# listeners held by two processes, and beside them one TCP listener (127.0.0.1:21500, backlog
# 16) that a burst fills: 40 clients connect at once, nobody accepts for 100 ms, then the queue
# is drained. Its peak is B+1 = 17 for those 100 ms and 0 otherwise. Two runs of
# `watch --json --sample-interval 10ms`, each reading watch's own JSON:
#  - cold: 4 bursts 7.13 s apart (longer than a listener stays hot; the odd figures keep them
#    off the refreshes' phase, which would see a burst whatever the sampling), so each must be
#    found by the
#    dumps of the whole scope: how many refreshes show the burst at its peak (17/17), the
#    period of those dumps (`sample_interval_us`) and CPU;
#  - hot: a burst every second for 10 s, the listener hot throughout: the samples its rows
#    count per second (`samples`), `hot_interval_us`, and CPU.
# Then `watch UNIX_TARGET` with the target among the 1,000 Unix listeners: samples per second
# of the target's row (100 Hz wanted), and CPU.
# CPU is user+system of the watch process over wall time: steady, from the 3rd second to a
# second before the end (/proc/PID/stat), and over the whole run (/usr/bin/time). With BASE=PATH
# (an older backlogctl) every run is repeated with it, in the same namespace, for a
# side-by-side (an older binary has no `samples`: its rate is 1e6 / sample_interval_us).
# A measurement, not a test.
#   usage: benches/watch_hot.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "skipped: needs root for unshare -n"; exit 0; fi
cargo build --release --quiet
bin=/tmp/backlogctl-watch-hot
cp target/release/backlogctl "$bin"
exec unshare -n bash -s "$bin" "${BASE:-}" <<'INNER'
set -euo pipefail
bin=$1 base=$2
ip link set lo up
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
cat > "$dir/hold.py" <<'PY'
import socket, sys, time
n_tcp, n_unix, d, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ls = []
for p in range(20000, 20000 + n_tcp):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", p)); s.listen(64); ls.append(s)
for i in range(n_unix):
    s = socket.socket(socket.AF_UNIX); s.bind(f"{d}/l-{i}.sock"); s.listen(64); ls.append(s)
open(ready, "w").close()
time.sleep(3600)
PY
# Bursts on 127.0.0.1:21500: FIRST_DELAY PERIOD COUNT LOG. Each line of LOG: start and end of
# one burst, unix seconds.
cat > "$dir/burst.py" <<'PY'
import socket, sys, time
first, period, count, log = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 21500)); l.listen(16); l.setblocking(False)
start = time.time() + first
with open(log, "w") as out:
    for i in range(count):
        time.sleep(max(0, start + i * period - time.time()))
        t0 = time.time()
        clients = []
        for _ in range(40):
            c = socket.socket(); c.setblocking(False)
            try: c.connect(("127.0.0.1", 21500))
            except BlockingIOError: pass
            clients.append(c)
        time.sleep(0.1)
        t1 = time.time()
        while True:
            try: a, _ = l.accept(); a.close()
            except BlockingIOError: break
        for c in clients: c.close()
        print(t0, t1, file=out, flush=True)
PY
python3 "$dir/hold.py" 1000 0 "$dir" "$dir/tcp.ready" &
python3 "$dir/hold.py" 0 1000 "$dir" "$dir/unix.ready" &
for _ in $(seq 600); do [ -e "$dir/tcp.ready" ] && [ -e "$dir/unix.ready" ] && break; sleep 0.1; done
# watch BIN SECONDS OUT ARGS...: prints its CPU share, steady (from the 3rd second to a
# second before the end: /proc/PID/stat) and over the whole run (start-up included: the first
# refresh names every listener's process).
watch_run() {
    local b=$1 secs=$2 out=$3; shift 3
    /usr/bin/time -f '%U %S %e' -o "$dir/time" "$b" watch --json --sample-interval 10ms \
        --interval 1s --duration "${secs}s" "$@" > "$out" &
    local timer=$! pid c1 c2 t1 t2
    sleep 3
    pid=$(pgrep -P "$timer")
    c1=$(awk '{print $14 + $15}' "/proc/$pid/stat"); t1=$(date +%s.%N)
    sleep $((secs - 4))
    c2=$(awk '{print $14 + $15}' "/proc/$pid/stat"); t2=$(date +%s.%N)
    wait "$timer"
    python3 -c "
u, s, w = map(float, open('$dir/time').read().split()[-3:])
steady = 100 * ($c2 - $c1) / $(getconf CLK_TCK) / ($t2 - $t1)
print(f'{steady:.2f}% of a core steady ({100 * (u + s) / w:.2f}% over the whole run)')"
}
# report LABEL OUT BURSTLOG CPU TARGET: reads watch's JSON.
report() {
    python3 - "$@" <<'PY'
import json, sys, datetime
label, out, log, cpu, target = sys.argv[1:6]
refreshes = [r for r in map(json.loads, open(out)) if "sample_interval_us" in r]
def t(r): return datetime.datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp()
def row(r):
    return next((x for x in r["listeners"] if str(x["local"]) == target or
                 (isinstance(x["local"], dict) and target in json.dumps(x["local"]))), None)
periods = sorted(r["sample_interval_us"] for r in refreshes[1:]) or [0]
hot = sorted(r.get("hot_interval_us", 0) for r in refreshes[1:] if r.get("hot", 0)) or [0]
line = f"{label:<34} cpu {cpu}; every listener every {periods[len(periods)//2]/1000:.0f} ms (median)"
if log != "-":
    bursts = [tuple(map(float, l.split())) for l in open(log)]
    seen = 0
    for (t0, t1) in bursts:
        peaks = [row(r)["peak"] for r in refreshes if row(r) and t0 <= t(r) <= t1 + 1.5]
        seen += max(peaks, default=0) == 17
    line += f"; bursts seen at their peak 17: {seen}/{len(bursts)}"
rates = [row(r)["samples"] for r in refreshes[1:-1] if row(r) and "samples" in row(r)]
if rates:
    rates.sort()
    line += f"; {target} sampled {rates[len(rates)//2]}/s (median of {len(rates)} refreshes)"
if hot[-1]:
    line += f", hot every {hot[len(hot)//2]/1000:.0f} ms"
rcpu = sorted(r["refresh_cpu_us"] for r in refreshes[1:] if "refresh_cpu_us" in r)
if rcpu:
    line += f"; a refresh {rcpu[len(rcpu)//2]/1000:.1f} ms of CPU (median)"
print(line)
PY
}
run_all() { # LABEL BIN
    local label=$1 b=$2 cpu
    python3 "$dir/burst.py" 2.37 7.13 4 "$dir/cold.log" &
    cpu=$(watch_run "$b" 27 "$dir/cold.json")
    wait $!
    report "$label cold bursts (7 s apart)" "$dir/cold.json" "$dir/cold.log" "$cpu" 127.0.0.1:21500
    python3 "$dir/burst.py" 1.37 1.03 10 "$dir/hot.log" &
    cpu=$(watch_run "$b" 12 "$dir/hot.json")
    wait $!
    report "$label hot (a burst every 1 s)" "$dir/hot.json" "$dir/hot.log" "$cpu" 127.0.0.1:21500
    cpu=$(watch_run "$b" 10 "$dir/unix.json" "$dir/l-500.sock")
    report "$label watch $dir/l-500.sock" "$dir/unix.json" - "$cpu" "l-500.sock"
}
echo "1,000 TCP + 1,000 Unix listeners + 127.0.0.1:21500 (backlog 16), watch --sample-interval 10ms:"
run_all new "$bin"
if [ -n "$base" ]; then run_all old "$base"; fi
INNER
