#!/usr/bin/env bash
# backlogctl against `ss` on the same namespace: 10,000 listeners, first with no established
# connections, then with 100,000 (200,000 sockets) waiting in the accept queues, then with the
# same 100,000 accepted and held by the listening process itself (as every real server does),
# in a private network namespace (root). The `--syn-recv` row is the kernel's own walk of the
# established hash, the reference for what grows with connections anyway.
# Times `ss -ltnm` against `backlogctl snapshot|doctor --window 0 --no-processes` (the same data:
# every listener with its memory info), `ss -ltnmp` against the same with process names, and
# `backlogctl doctor --window 0 :20000` (median of RUNS), with peak RSS. A measurement.
#   usage: benches/vs_ss.sh [RUNS]   (default 15)
#   BASE=/path/to/an/older/backlogctl benches/vs_ss.sh: also times that binary's doctor rows,
#   for a before/after in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-15}
cargo build --release --quiet
bin=$PWD/target/release/backlogctl
if [ "$(id -u)" != 0 ]; then echo "skipped: needs root for unshare -n"; exit 0; fi
exec unshare -n bash -s "$bin" "$runs" "${BASE:-}" <<'INNER'
set -euo pipefail
bin=$1 runs=$2 base=$3
ip link set lo up
echo "1024 65000" > /proc/sys/net/ipv4/ip_local_port_range
fifo=$(mktemp -u); mkfifo "$fifo"
python3 - "$fifo" <<'PY' &
# 10,000 listeners in this process (the fd limit here is 20,000 per process); then 100,000
# connections from 6 client processes, left in the listeners' accept queues (10 each): both
# ends are established sockets in the kernel's hash, which is what matters for the dump cost.
import socket, sys, time, os, multiprocessing
fifo = sys.argv[1]
ls = []
for p in range(20000, 30000):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", p)); s.listen(64); ls.append(s)
open(fifo, "w").write("listening\n")
time.sleep(0.2)
open(fifo).read()  # wait for the go-ahead
def clients(k, n, ready):
    for s in ls:
        s.close()  # inherited by fork; they would eat this process's 20,000 descriptors
    conns = []
    for i in range(n):
        c = socket.socket(); c.connect(("127.0.0.1", 20000 + (k * n + i) % 10000)); conns.append(c)
    ready.put(n)
    time.sleep(3600)
q = multiprocessing.Queue()
procs = [multiprocessing.Process(target=clients, args=(k, 100_000 // 6 + (1 if k < 100_000 % 6 else 0), q), daemon=True) for k in range(6)]
for p in procs: p.start()
total = sum(q.get() for _ in procs)
open(fifo, "w").write("connected %d\n" % total)
open(fifo).read()  # wait for the go-ahead
# Pre-fork workers, as a real server has: each inherits the 10,000 listeners and accepts and
# holds up to 9,000 connections (the descriptor limit here is 20,000 per process).
def worker(ready):
    held = []
    for s in ls:
        s.setblocking(False)
        while len(held) < 9000:
            try:
                held.append(s.accept()[0])
            except BlockingIOError:
                break
    ready.put(len(held))
    time.sleep(3600)
accepted = 0
workers = []
while accepted < total:
    w = multiprocessing.Process(target=worker, args=(q,), daemon=True)
    w.start(); workers.append(w)
    n = q.get()
    if n == 0:
        break
    accepted += n
open(fifo, "w").write("accepted %d connections held by %d pre-fork workers\n" % (accepted, len(workers)))
time.sleep(3600)
PY
load=$!
trap 'pkill -P $load 2>/dev/null; kill $load 2>/dev/null; rm -f "$fifo"' EXIT
measure() {
    python3 - "$runs" "$@" <<'PY'
import subprocess, sys, time, statistics, resource
runs = int(sys.argv[1]); cmds = sys.argv[2:]
for cmd in cmds:
    argv = cmd.split()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rss = r.stderr.strip().splitlines()[-1]
    print(f"  {cmd.replace(argv[0], argv[0].rsplit('/', 1)[-1]):<52} median {statistics.median(times)*1000:8.1f} ms   peak RSS {int(rss)/1024:6.1f} MiB")
PY
}
set_of() {
    # Same data in pairs: listeners with memory info, then the same with their processes.
    measure "ss -ltnm" "$bin snapshot --window 0 --no-processes" "$bin doctor --window 0 --no-processes" \
        "$bin snapshot --window 0 --no-processes --syn-recv" \
        "ss -ltnmp" "$bin snapshot --window 0" "$bin doctor --window 0" "$bin doctor --window 0 :20000"
    if [ -n "$base" ]; then
        echo "  before ($base):"
        measure "$base doctor --window 0 --no-processes" "$base doctor --window 0" "$base doctor --window 0 :20000"
    fi
}
read -r _ < "$fifo"
echo "10,000 listeners, 0 established connections:"
set_of
echo go > "$fifo"
read -r _ n < "$fifo"
echo "10,000 listeners, $n established connections in the accept queues:"
set_of
echo go > "$fifo"
read -r _ n < "$fifo"
echo "10,000 listeners, $n that also hold the listeners:"
set_of
INNER
