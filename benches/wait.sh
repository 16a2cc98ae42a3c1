#!/usr/bin/env bash
# The cost of reading the clients' wait (issue 29): doctor reads, in each window, the
# ESTABLISHED sockets of the TCP listeners' ports with tcp_info (src/collect/sampler.rs
# `read_waits`), filtered by port in the kernel. In a private network namespace (root):
#  - 127.0.0.1:9000 with 20,000 connections accepted, answered and held by 4 server processes,
#    plus 200 whose request was accepted but never answered (so accepted-not-served fires);
#  - then 100,000 more connections elsewhere, accepted, answered and held on 127.0.0.1:9100
#    (both ends of a loopback connection are in the namespace: 240,400 ESTABLISHED sockets).
# Times `backlogctl doctor --window 0 --no-processes :9000`, the same for every listener (the
# wait dump then covers both ports), `doctor --window 1s --no-processes :9000` (the wait read
# again and again, its interval stretched by its cost) against `ss -tnei state established
# "sport = :9000"`: median of RUNS, with user/system CPU (wait4) and peak RSS (/usr/bin/time);
# the window-0 rows also before the 100,000 exist. Counts the wait readings of `snapshot
# --window 1s :9000` (samples with a `wait`) and prints doctor's finding ids for :9000, so the
# figures are of a run that measured a wait. A measurement, not a test.
#   usage: benches/wait.sh [RUNS]   (default 7)
#   BASE=/path/to/an/older/backlogctl benches/wait.sh: also times that binary's doctor rows,
#   for a before/after in one run.
# Uses a copy of target/release/backlogctl at /tmp/backlogctl-wait (built first if missing or
# older than src), so a rebuild during the run does not change what is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-7}
if [ "$(id -u)" != 0 ]; then echo "skipped: needs root for unshare -n"; exit 0; fi
if [ ! -x target/release/backlogctl ] ||
    [ -n "$(find src Cargo.toml Cargo.lock -newer target/release/backlogctl -print -quit)" ]; then
    cargo build --release --quiet
fi
bin=/tmp/backlogctl-wait
cp target/release/backlogctl "$bin"
exec unshare -n bash -s "$bin" "$runs" "${BASE:-}" <<'INNER'
set -euo pipefail
bin=$1 runs=$2 base=$3
ip link set lo up
echo "1024 65000" > /proc/sys/net/ipv4/ip_local_port_range
fifo=$(mktemp -u); mkfifo "$fifo"
python3 - "$fifo" <<'PY' &
# The fd limit here is 20,000 per process: servers and clients are spread over processes of
# at most ~17,000 connections each. Every step is bounded (timeouts on accept and connect).
import socket, sys, time, multiprocessing
fifo = sys.argv[1]
REQUEST = b"GET / HTTP/1.0\r\n\r\n"
REPLY = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
def listener(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(4096)
    # Shared by every server process (one open file): all use the same timeout, hence the
    # same O_NONBLOCK, on it.
    s.settimeout(60)
    return s
l9000, l9100 = listener(9000), listener(9100)
def serve(l, quota, answer, ready):
    # Accepts `quota` connections and holds them; answers each request, or never reads it.
    held = []
    try:
        while len(held) < quota:
            c = l.accept()[0]
            if answer:
                c.settimeout(30); c.recv(256); c.sendall(REPLY)
            held.append(c)
    except OSError:
        pass
    ready.put(len(held))
    time.sleep(1800)
def connect(port, n, source, ready):
    l9000.close(); l9100.close()
    conns = []
    try:
        for _ in range(n):
            c = socket.socket(); c.settimeout(30)
            if source:
                # Another source address: 100,000 connections to one port need more than the
                # 64,000 ephemeral ports of one; the port is then picked at connect().
                c.setsockopt(socket.IPPROTO_IP, NO_PORT, 1); c.bind((source, 0))
            c.connect(("127.0.0.1", port)); c.sendall(REQUEST); conns.append(c)
    except OSError as e:
        print("client:", e, file=sys.stderr)
    ready.put(len(conns))
    time.sleep(1800)
def split(total, parts):
    return [total // parts + (1 if k < total % parts else 0) for k in range(parts)]
procs = []
def phase(l, port, total, parts, answer, sources):
    qs, qc = multiprocessing.Queue(), multiprocessing.Queue()
    for n in split(total, parts):
        procs.append(multiprocessing.Process(target=serve, args=(l, n, answer, qs), daemon=True))
        procs[-1].start()
    for n, src in zip(split(total, len(sources)), sources):
        procs.append(multiprocessing.Process(target=connect, args=(port, n, src, qc), daemon=True))
        procs[-1].start()
    connected = sum(qc.get(timeout=300) for _ in sources)
    accepted = sum(qs.get(timeout=300) for _ in range(parts))
    return connected, accepted
c1, a1 = phase(l9000, 9000, 20_000, 4, True, [None, None])
c2, a2 = phase(l9000, 9000, 200, 1, False, [None])
open(fifo, "w").write("ready :9000 has %d answered (%d connected) and %d never answered (%d connected)\n" % (a1, c1, a2, c2))
open(fifo).read()  # wait for the go-ahead
c3, a3 = phase(l9100, 9100, 100_000, 6, True, ["127.0.0.%d" % k for k in range(2, 8)])
open(fifo, "w").write("ready :9100 has %d answered (%d connected)\n" % (a3, c3))
time.sleep(1800)
PY
load=$!
trap 'pkill -P $load 2>/dev/null; kill $load 2>/dev/null; rm -f "$fifo"' EXIT
measure() {
    # Median wall time and median user/system CPU (wait4's rusage: the system time is mostly
    # the kernel's dump), then one more run under /usr/bin/time for the peak RSS (wait4's
    # maxrss would count the forked python3 before exec).
    python3 - "$runs" "$@" <<'PY'
import os, subprocess, sys, time, statistics, shlex
runs = int(sys.argv[1]); cmds = sys.argv[2:]
for cmd in cmds:
    argv = shlex.split(cmd)
    times, user, system = [], [], []
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, ru = os.wait4(p.pid, 0)
        times.append(time.perf_counter() - t)
        user.append(ru.ru_utime); system.append(ru.ru_stime)
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rss = int(r.stderr.strip().splitlines()[-1])
    m = lambda xs: statistics.median(xs) * 1000
    print(f"  {cmd.replace(argv[0], argv[0].rsplit('/', 1)[-1]):<62} median {m(times):7.1f} ms  (user {m(user):5.1f}  sys {m(system):6.1f})  peak RSS {rss/1024:5.1f} MiB", flush=True)
PY
}
ss_cmd='ss -tnei state established "sport = :9000"'
established() { ss -tn state established | tail -n +2 | wc -l; }
lines() { ss -tnei state established "sport = :9000" | wc -l; }
ids() {
    # The finding ids of doctor --json (exit 1/2 = findings, not a failure here).
    { "$1" doctor --window 0 --no-processes --json :9000 || true; } |
        python3 -c 'import json, sys; print(" ".join(f["id"] for f in json.load(sys.stdin)["findings"]) or "none")'
}
readings() {
    # Wait readings in a 1 s snapshot: every sample that read the wait carries a `wait` on the
    # listener, and a sample that saw clients waiting is always kept.
    local f; f=$(mktemp)
    "$bin" snapshot --window 1s :9000 > "$f"
    python3 - "$f" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
w = [l["wait"] for s in d["samples"] for l in s.get("listeners", []) if l["local"] == "127.0.0.1:9000" and "wait" in l]
print(f"    {d['samples_taken']} samples taken, {len(d['samples'])} kept, {len(w)} with a wait (unanswered {sorted({x['unanswered'] for x in w})}, oldest {max(x['unanswered_oldest_ms'] for x in w) if w else '-'} ms)")
PY
    rm -f "$f"
}
t0=$SECONDS
read -r line < "$fifo"; echo "$line"
echo "setup: $((SECONDS - t0)) s"
sleep 1.5  # the never-answered requests pass the 1 s warning: the finding fires
echo "$(established) ESTABLISHED sockets in the namespace; ss -tnei state established \"sport = :9000\" | wc -l: $(lines)"
echo "doctor :9000 findings: $(ids "$bin")"
echo "only :9000 (20,200 connections, 40,400 sockets):"
measure "$bin doctor --window 0 --no-processes :9000" "$bin doctor --window 0 --no-processes" "$ss_cmd"
if [ -n "$base" ]; then
    echo "  before ($base; findings: $(ids "$base")):"
    measure "$base doctor --window 0 --no-processes :9000" "$base doctor --window 0 --no-processes"
fi
echo go > "$fifo"
t1=$SECONDS
read -r line < "$fifo"; echo "$line"
echo "setup: $((SECONDS - t1)) s"
echo "$(established) ESTABLISHED sockets in the namespace; ss -tnei state established \"sport = :9000\" | wc -l: $(lines)"
echo "doctor :9000 findings: $(ids "$bin")"
echo "wait readings of snapshot --window 1s :9000, 3 runs:"
for _ in 1 2 3; do readings; done
echo ":9000 with 20,200 connections and 100,000 on :9100 (240,400 sockets):"
measure "$bin doctor --window 0 --no-processes :9000" "$bin doctor --window 0 --no-processes" \
    "$bin doctor --window 1s --no-processes :9000" "$ss_cmd"
if [ -n "$base" ]; then
    echo "  before ($base; findings: $(ids "$base")):"
    measure "$base doctor --window 0 --no-processes :9000" "$base doctor --window 0 --no-processes" \
        "$base doctor --window 1s --no-processes :9000"
fi
echo "total: $((SECONDS - t0)) s in the namespace"
INNER
