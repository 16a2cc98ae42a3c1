#!/usr/bin/env bash
# CPU cost of `backlogctl watch` sampling at 100 Hz (--sample-interval 10ms) with 1,000 TCP
# listeners, in a private network namespace (root needed). Prints the share of one core used,
# for the whole namespace in scope and for one target port. A measurement, not a test.
#   usage: benches/watch_cpu.sh [SECONDS]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
cargo build --release --quiet
bin=$PWD/target/release/backlogctl
if [ "$(id -u)" != 0 ]; then echo "skipped: needs root for unshare -n"; exit 0; fi
exec unshare -n bash -s "$bin" "$secs" <<'INNER'
set -euo pipefail
bin=$1 secs=$2
ip link set lo up 2>/dev/null || true
python3 - <<'PY' &
import socket, time
ls = []
for p in range(20000, 21000):
    s = socket.socket(); s.bind(("127.0.0.1", p)); s.listen(128); ls.append(s)
open("/tmp/.watch_cpu_ready", "w").close()
time.sleep(3600)
PY
server=$!
trap 'kill $server 2>/dev/null; rm -f /tmp/.watch_cpu_ready' EXIT
for _ in $(seq 100); do [ -e /tmp/.watch_cpu_ready ] && break; sleep 0.1; done
measure() {
    local label=$1; shift
    local out
    out=$( { /usr/bin/time -f '%U %S %e' "$bin" watch --json --sample-interval 10ms --duration "${secs}s" "$@" > /tmp/.watch_cpu_out; } 2>&1 | tail -1)
    read -r user sys wall <<<"$out"
    local period
    period=$(head -2 /tmp/.watch_cpu_out | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["sample_interval_us"]/1000, "ms")')
    python3 -c "u,s,w=$user,$sys,$wall; print(f'{\"$label\":<34} user {u:.2f}s sys {s:.2f}s over {w:.1f}s wall = {100*(u+s)/w:.2f}% of one core; sampling every $period')"
}
echo "1000 listeners in the namespace, watch for ${secs}s at --sample-interval 10ms:"
measure "all listeners in scope"
measure "one target (:20000)" :20000
INNER
