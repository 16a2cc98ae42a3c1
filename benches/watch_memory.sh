#!/usr/bin/env bash
# Long run: `backlogctl watch` for MINUTES (default 10) at --sample-interval 10ms with 1,000
# listeners in a private network namespace, one of them taking a connection burst every 5 s;
# prints the watcher's RSS every 30 s, to show that memory stays flat. Root needed.
#   usage: benches/watch_memory.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
cargo build --release --quiet
bin=$PWD/target/release/backlogctl
if [ "$(id -u)" != 0 ]; then echo "skipped: needs root for unshare -n"; exit 0; fi
exec unshare -n bash -s "$bin" "$minutes" <<'INNER'
set -euo pipefail
bin=$1 minutes=$2
ip link set lo up
echo 20 > /proc/sys/net/core/somaxconn
python3 - <<'PY' &
import socket, time, os
ls = []
for p in range(20000, 21000):
    s = socket.socket(); s.bind(("127.0.0.1", p)); s.listen(128); ls.append(s)
open("/tmp/.watch_mem_ready", "w").close()
hot = ls[0]; hot.setblocking(False)
while True:
    cs = []
    for _ in range(40):
        c = socket.socket(); c.setblocking(False); c.connect_ex(("127.0.0.1", 20000)); cs.append(c)
    time.sleep(0.05)
    while True:
        try: hot.accept()[0].close()
        except BlockingIOError: break
    for c in cs: c.close()
    time.sleep(5)
PY
load=$!
trap 'kill $load $watch 2>/dev/null; rm -f /tmp/.watch_mem_ready' EXIT
for _ in $(seq 100); do [ -e /tmp/.watch_mem_ready ] && break; sleep 0.1; done
"$bin" watch --json --sample-interval 10ms --duration "${minutes}m" > /dev/null &
watch=$!
echo "minute  RSS_kB  (watch, 1000 listeners, sampling every 10ms or as the 2% budget allows)"
for i in $(seq 0 $((minutes * 2))); do
    rss=$(awk '/VmRSS/ {print $2}' /proc/$watch/status 2>/dev/null || echo gone)
    printf '%6.1f  %s\n' "$(echo "$i / 2" | bc -l)" "$rss"
    [ "$rss" = gone ] && break
    sleep 30
done
wait $watch || true
INNER
