#!/usr/bin/env bash
# `backlogctl snapshot --no-processes` against `ss` doing the same job, like for like, with the
# binary of an earlier build beside it (BEFORE, default /tmp/backlogctl-before), so a change is
# measured before and after in one run. In a private network namespace (root), Python holds
# 10,000 TCP listeners (127.0.0.1:20000-29999) and 10,000 Unix ones:
#  - both families: `snapshot --no-processes` against `ss -ltnm` + `ss -xlm`;
#  - TCP alone: `snapshot -t --no-processes` against `ss -ltnm`;
#  - TCP + wait: the same against `ss -ltnm` + `ss -tni state established` on the listeners'
#    ports, which is what the snapshot reads for the clients' wait (like for like);
# first with no established connection, then with 20,000 connections accepted and held by
# worker processes (40,000 ESTABLISHED sockets: both ends are in the namespace). Each round
# runs every command once, alternating; the ratio is the median of the per-round ratios (wall time
# of the whole process, start-up included, output to /dev/null). The JSON of each binary is
# checked to hold the 10,000 + 10,000 listeners, so the figures are of runs that saw them.
# A measurement, not a test.
#   usage: benches/snapshot_vs_ss.sh [RUNS]   (default 15)
#   BEFORE=/path/to/an/older/backlogctl benches/snapshot_vs_ss.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-15}
before=${BEFORE:-/tmp/backlogctl-before}
if [ "$(id -u)" != 0 ]; then echo "skipped: needs root for unshare -n"; exit 0; fi
cargo build --release --quiet
# A copy, so that a rebuild during the run does not change what is measured.
after=$(mktemp /tmp/backlogctl-after.XXXXXX)
trap 'rm -f "$after"' EXIT
cp "${CARGO_TARGET_DIR:-$PWD/target}/release/backlogctl" "$after"
chmod 755 "$after"
[ -x "$before" ] || { echo "no $before: timing this build alone" >&2; before=; }
unshare -n bash -s "$after" "$runs" "$before" <<'INNER'
set -euo pipefail
after=$1 runs=$2 before=$3
ip link set lo up
dir=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null; rm -rf "$dir"' EXIT
mkdir "$dir/u"
# The descriptor limit here is 20,000 per process: 10,000 TCP listeners in one, 10,000 Unix
# ones in a child; on the go-ahead, 2 client processes of 10,000 connections each, accepted by
# 3 workers each holding a third of the listeners.
cat > "$dir/hold.py" <<'PY'
import socket, sys, time, os
d = sys.argv[1]
def forever():
    # Until the parent is gone (the script's end, or its holder's): nothing outlives the run.
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
if os.fork() == 0:
    us = []
    for i in range(10000):
        s = socket.socket(socket.AF_UNIX); s.bind(f"{d}/u/{i}.sock"); s.listen(64); us.append(s)
    open(f"{d}/unix-ready", "w").close()
    forever()
ls = []
for p in range(20000, 30000):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", p)); s.listen(64); ls.append(s)
while not os.path.exists(f"{d}/unix-ready"):
    time.sleep(0.05)
open(f"{d}/ready", "w").close()
while not os.path.exists(f"{d}/go"):
    time.sleep(0.05)
def child(fn):
    r, w = os.pipe()
    if os.fork() == 0:
        os.close(r); held = fn(); os.write(w, b"x"); forever()
    os.close(w); return r
def clients():
    for s in ls: s.close()
    return [socket.create_connection(("127.0.0.1", 20000 + i)) for i in range(10000)]
def worker(mine):
    def run():
        for i, s in enumerate(ls):
            if i not in mine: s.close()
        return [ls[i].accept()[0] for i in sorted(mine) for _ in range(2)]
    return run
for r in [child(clients) for _ in range(2)]: os.read(r, 1)
for r in [child(worker(set(range(j, 10000, 3)))) for j in range(3)]: os.read(r, 1)
open(f"{d}/connected", "w").write("20000\n")
forever()
PY
python3 "$dir/hold.py" "$dir" &
wait_for() { for _ in $(seq 1200); do [ -e "$1" ] && return; sleep 0.1; done; echo "no $1" >&2; exit 1; }
measure() { # LABEL: every row, `runs` rounds
    python3 - "$runs" "$after" "$before" "$1" <<'PY'
import json, subprocess, sys, time, statistics
runs, after, before, label = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
bins = [("before", before)] if before else []
bins.append(("after", after))
rows = [
    ("both families", "snapshot --no-processes", ["ss -ltnm", "ss -xlm"]),
    ("TCP alone", "snapshot -t --no-processes", ["ss -ltnm"]),
    # What the snapshot reads besides the listeners: the clients' wait, from the ESTABLISHED
    # sockets of the listeners' ports with their tcp_info.
    ("TCP + wait", "snapshot -t --no-processes",
     ["ss -ltnm", "ss -tni state established ( sport >= :20000 and sport <= :29999 )"]),
]
def run(cmds):
    start = time.perf_counter()
    for c in cmds:
        subprocess.run(c.split(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start
for name, b in bins:
    snap = json.loads(subprocess.run([b, "snapshot", "--no-processes"], capture_output=True, check=True).stdout)
    ls = snap["samples"][-1]["listeners"]
    unix = sum(1 for l in ls if isinstance(l["local"], dict))
    assert (len(ls) - unix, unix) == (10000, 10000), (name, len(ls), unix)
print(label)
for row, ours, theirs in rows:
    t = {"ss": []}; ratios = {n: [] for n, _ in bins}
    for n, _ in bins:
        t[n] = []
    for _ in range(runs):
        y = run(theirs); t["ss"].append(y)
        for n, b in bins:
            x = run([f"{b} {ours}"]); t[n].append(x); ratios[n].append(x / y)
    ms = lambda xs: statistics.median(xs) * 1000
    line = f"  {row:<14} {' + '.join(theirs):<19} {ms(t['ss']):6.1f} ms"
    for n, _ in bins:
        line += f" | {n} {ms(t[n]):6.1f} ms {statistics.median(ratios[n]):.2f}x"
    print(line + f"   ({ours})")
PY
}
wait_for "$dir/ready"
measure "10,000 TCP + 10,000 Unix listeners, 0 established connections (median of $runs rounds):"
touch "$dir/go"
wait_for "$dir/connected"
measure "the same with $(cat "$dir/connected") connections accepted and held (40,000 ESTABLISHED sockets):"
INNER
