#!/usr/bin/env bash
# The exporter at fleet scale, against the naive way, in one run (issue 16's goal):
#   100 network namespaces x 100 listeners; a scrape <= 100 ms, RSS <= 30 MB, memory flat over
#   10,000 scrapes while namespaces come and go; <= 0.1x the time of `ip netns exec NS ss -ltnm`
#   + `nstat` for each namespace.
# Then gzip against identity (issue 24): the same scrape with and without
# `Accept-Encoding: gzip`, alternating, GZIP_PAIRS times (default 100): bytes on the wire
# (headers + body as sent), p50/p95 of the HTTP round trip, and the exporter's CPU per scrape.
# Needs root, iproute2 (ip, ss, nstat), python3, curl. Everything it makes is removed on exit.
# Usage: benches/exporter.sh [NAMESPACES] [LISTENERS] [SCRAPES]
#   UNIX=N in the environment: each namespace's process also holds N Unix-domain listeners
#   (abstract names, per namespace).
#   BIN=PATH: run that binary instead of target/release/backlogctl (e.g. one built with another
#   gzip level, to compare).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
L=${2:-100}
SCRAPES=${3:-10000}
UNIX=${UNIX:-0}
PORT=${PORT:-19848}
PREFIX="blt-bench-$$"
GZIP_PAIRS=${GZIP_PAIRS:-100}
cargo build --release -q
BIN=${BIN:-target/release/backlogctl}
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in $(ip netns list | awk '{print $1}' | grep "^$PREFIX" || true); do ip netns del "$ns"; done
}
trap cleanup EXIT

# One process per namespace holding L listeners, as a pod's server would.
hold() { # NAME
    ip netns add "$1"
    ip -n "$1" link set lo up
    ip netns exec "$1" python3 -c '
import socket, sys, time
socks = []
for p in range(10000, 10000 + int(sys.argv[1])):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", p)); s.listen(128); socks.append(s)
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX); s.bind("\0bench-%d" % i); s.listen(128); socks.append(s)
print("ready", flush=True)
time.sleep(86400)' "$L" "$UNIX" > "/tmp/$1.ready" &
    pids+=($!)
}
echo "== setup: $N namespaces x ($L TCP + $UNIX Unix) listeners"
for i in $(seq 1 "$N"); do hold "$PREFIX-$i"; done
for i in $(seq 1 "$N"); do
    until grep -q ready "/tmp/$PREFIX-$i.ready" 2>/dev/null; do sleep 0.05; done
    rm -f "/tmp/$PREFIX-$i.ready"
done

$BIN exporter --all-netns --listen "127.0.0.1:$PORT" 2>/dev/null &
EXP=$!
pids+=($EXP)
until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.05; done
rss() { awk '/^VmRSS/ {print $2}' "/proc/$EXP/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$EXP/status"; }
scrape() { curl -s -o /tmp/$PREFIX.prom -w '%{time_total}\n' "http://127.0.0.1:$PORT/metrics"; }

first=$(scrape)
echo "first scrape (names every listener's process): ${first}s"
series=$(grep -c '^backlogctl_listen_backlog{' /tmp/$PREFIX.prom)
echo "listener series: $series (expected at least $((N * (L + UNIX))))"
times=$(for _ in $(seq 1 50); do scrape; done | sort -n)
p50=$(echo "$times" | awk '{a[NR]=$1} END {print a[int(NR*0.5)]}')
p95=$(echo "$times" | awk '{a[NR]=$1} END {print a[int(NR*0.95)]}')
echo "scrape, 50 runs: p50 ${p50}s p95 ${p95}s (HTTP round trip, whole exposition)"
echo "collection (backlogctl_scrape_duration_seconds): $(grep '^backlogctl_scrape_duration_seconds' /tmp/$PREFIX.prom | cut -d' ' -f2)s"
echo "size: $(wc -c < /tmp/$PREFIX.prom) bytes; RSS $(rss) kB, peak $(hwm) kB"

echo "== gzip against identity: $GZIP_PAIRS scrapes each, alternating"
cpu() { awk '{print $14 + $15}' "/proc/$EXP/stat"; } # utime + stime, in clock ticks
HZ=$(getconf CLK_TCK)
: > "/tmp/$PREFIX.identity"
: > "/tmp/$PREFIX.gzip"
for _ in $(seq 1 "$GZIP_PAIRS"); do
    for mode in identity gzip; do
        header=()
        [ "$mode" = gzip ] && header=(-H 'Accept-Encoding: gzip')
        before=$(cpu)
        # Not --compressed: curl would decode, and size_download must be the bytes sent.
        line=$(curl -s -o /dev/null "${header[@]}" \
            -w '%{size_header} %{size_download} %{time_total}' "http://127.0.0.1:$PORT/metrics")
        echo "$line $(( $(cpu) - before ))" >> "/tmp/$PREFIX.$mode"
    done
done
for mode in identity gzip; do
    f="/tmp/$PREFIX.$mode"
    bytes=$(awk '{s += $1 + $2} END {printf "%d", s / NR}' "$f")
    ms=$(awk '{print $3 * 1000}' "$f" | sort -n | awk '{a[NR]=$1} END {printf "p50 %.1f ms, p95 %.1f ms", a[int(NR*0.5)], a[int(NR*0.95)]}')
    cpu_ms=$(awk -v hz="$HZ" '{s += $4} END {printf "%.1f", s * 1000 / hz / NR}' "$f")
    echo "$mode: $bytes bytes on the wire per scrape; $ms; exporter CPU ${cpu_ms} ms per scrape"
done
echo "gzip: $(awk '{s += $1 + $2} END {print s}' "/tmp/$PREFIX.identity") / $(awk '{s += $1 + $2} END {print s}' "/tmp/$PREFIX.gzip") = \
$(echo "scale=1; $(awk '{s += $1 + $2} END {print s}' "/tmp/$PREFIX.identity") / $(awk '{s += $1 + $2} END {print s}' "/tmp/$PREFIX.gzip")" | bc)x fewer bytes"
rm -f "/tmp/$PREFIX.identity" "/tmp/$PREFIX.gzip"

echo "== naive: ip netns exec NS ss -ltnm + nstat, for each namespace"
start=$(date +%s.%N)
for i in $(seq 1 "$N"); do
    ip netns exec "$PREFIX-$i" ss -ltnm >/dev/null
    ip netns exec "$PREFIX-$i" nstat -az >/dev/null
done
naive=$(echo "$(date +%s.%N) - $start" | bc)
echo "naive: ${naive}s; exporter p50 / naive = $(echo "scale=4; $p50 / $naive" | bc)"

echo "== churn: $SCRAPES scrapes while a namespace appears and disappears every 20 scrapes"
base=$(rss)
churn=0
for s in $(seq 1 "$SCRAPES"); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/metrics"
    if (( s % 20 == 0 )); then
        name="$PREFIX-churn-$churn"
        if (( churn % 2 == 0 )); then hold "$name"; else
            kill "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
            ip netns del "$PREFIX-churn-$((churn - 1))"
        fi
        churn=$((churn + 1))
    fi
    if (( s % (SCRAPES / 5) == 0 )); then echo "after $s scrapes: RSS $(rss) kB (peak $(hwm) kB)"; fi
done
echo "RSS before churn ${base} kB, after $(rss) kB, peak $(hwm) kB"
