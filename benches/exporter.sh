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
#   BASE=PATH: run that binary too (an older build), against the same namespaces: every scrape
#   of each part goes to one then the other, so that a machine busy with something else slows
#   both alike; each figure is printed for both.
#   ONE_HOLDER=1: one process holds every namespace's listeners (entering each with setns),
#   not one per namespace: 1,000 namespaces without 1,000 Python processes.
#   PREFIX=NAME: the namespaces' prefix (default blt-bench-PID).
#   RUNS=N: scrapes of the first part, for its p50/p95 (default 50).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
L=${2:-100}
SCRAPES=${3:-10000}
UNIX=${UNIX:-0}
PORT=${PORT:-19848}
PREFIX=${PREFIX:-blt-bench-$$}
GZIP_PAIRS=${GZIP_PAIRS:-100}
ONE_HOLDER=${ONE_HOLDER:-0}
RUNS=${RUNS:-50}
cargo build --release -q
BIN=${BIN:-target/release/backlogctl}
BASE=${BASE:-}
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
# Every namespace's listeners held by one process, which enters each in turn (ONE_HOLDER=1).
hold_all() {
    for i in $(seq 1 "$N"); do
        ip netns add "$PREFIX-$i"
        ip -n "$PREFIX-$i" link set lo up
    done
    python3 -c '
import ctypes, os, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
socks = []
for i in range(1, int(sys.argv[2]) + 1):
    fd = os.open("/run/netns/%s-%d" % (sys.argv[1], i), os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        sys.exit("setns: %s" % os.strerror(ctypes.get_errno()))
    os.close(fd)
    for p in range(10000, 10000 + int(sys.argv[3])):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", p)); s.listen(128); socks.append(s)
    for u in range(int(sys.argv[4])):
        s = socket.socket(socket.AF_UNIX); s.bind("\0bench-%d" % u); s.listen(128); socks.append(s)
print("ready", flush=True)
time.sleep(86400)' "$PREFIX" "$N" "$L" "$UNIX" > "/tmp/$PREFIX-all.ready" &
    pids+=($!)
    until grep -q ready "/tmp/$PREFIX-all.ready" 2>/dev/null; do sleep 0.05; done
    rm -f "/tmp/$PREFIX-all.ready"
}
echo "== setup: $N namespaces x ($L TCP + $UNIX Unix) listeners"
if [ "$ONE_HOLDER" = 1 ]; then
    hold_all
else
    for i in $(seq 1 "$N"); do hold "$PREFIX-$i"; done
    for i in $(seq 1 "$N"); do
        until grep -q ready "/tmp/$PREFIX-$i.ready" 2>/dev/null; do sleep 0.05; done
        rm -f "/tmp/$PREFIX-$i.ready"
    done
fi

# The exporters: "new" (BIN) on PORT, "base" (BASE) on PORT+1 when given.
names=(new)
declare -A exp_pid exp_port exp_bin
exp_bin[new]=$BIN
if [ -n "$BASE" ]; then
    names+=(base)
    exp_bin[base]=$BASE
fi
k=0
for e in "${names[@]}"; do
    exp_port[$e]=$((PORT + k))
    k=$((k + 1))
    ${exp_bin[$e]} exporter --all-netns --listen "127.0.0.1:${exp_port[$e]}" 2>/dev/null &
    exp_pid[$e]=$!
    pids+=($!)
done
for e in "${names[@]}"; do
    until curl -sf "http://127.0.0.1:${exp_port[$e]}/healthz" >/dev/null; do sleep 0.05; done
done
EXP=${exp_pid[new]}
rss() { awk '/^VmRSS/ {print $2}' "/proc/${exp_pid[${1:-new}]}/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/${exp_pid[${1:-new}]}/status"; }
scrape() { # EXPORTER
    curl -s -o "/tmp/$PREFIX.$1.prom" -w '%{time_total}\n' "http://127.0.0.1:${exp_port[$1]}/metrics"
}
label() { [ "$1" = new ] && echo "$BIN" || echo "$BASE"; }

for e in "${names[@]}"; do
    echo "first scrape, $(label "$e") (names every listener's process): $(scrape "$e")s"
done
series=$(grep -c '^backlogctl_listen_backlog{' "/tmp/$PREFIX.new.prom")
echo "listener series: $series (expected at least $((N * (L + UNIX))))"
for e in "${names[@]}"; do : > "/tmp/$PREFIX.$e.times"; : > "/tmp/$PREFIX.$e.collect"; done
for _ in $(seq 1 "$RUNS"); do
    for e in "${names[@]}"; do
        scrape "$e" >> "/tmp/$PREFIX.$e.times"
        grep '^backlogctl_scrape_duration_seconds' "/tmp/$PREFIX.$e.prom" | cut -d' ' -f2 >> "/tmp/$PREFIX.$e.collect"
    done
done
pct() { sort -n "$1" | awk -v q="$2" '{a[NR]=$1} END {print a[int(NR*q)]}'; }
for e in "${names[@]}"; do
    echo "$(label "$e"): scrape, $RUNS runs: p50 $(pct "/tmp/$PREFIX.$e.times" 0.5)s p95 $(pct "/tmp/$PREFIX.$e.times" 0.95)s (HTTP round trip, whole exposition); collection (backlogctl_scrape_duration_seconds) p50 $(pct "/tmp/$PREFIX.$e.collect" 0.5)s; size: $(wc -c < "/tmp/$PREFIX.$e.prom") bytes; RSS $(rss "$e") kB, peak $(hwm "$e") kB"
done
p50=$(pct "/tmp/$PREFIX.new.times" 0.5)

echo "== gzip against identity: $GZIP_PAIRS scrapes each, alternating"
cpu() { awk '{print $14 + $15}' "/proc/${exp_pid[$1]}/stat"; } # utime + stime, in clock ticks
HZ=$(getconf CLK_TCK)
for e in "${names[@]}"; do : > "/tmp/$PREFIX.$e.identity"; : > "/tmp/$PREFIX.$e.gzip"; done
for _ in $(seq 1 "$GZIP_PAIRS"); do
    for mode in identity gzip; do
        header=()
        [ "$mode" = gzip ] && header=(-H 'Accept-Encoding: gzip')
        for e in "${names[@]}"; do
            before=$(cpu "$e")
            # Not --compressed: curl would decode, and size_download must be the bytes sent.
            line=$(curl -s -o /dev/null "${header[@]}" \
                -w '%{size_header} %{size_download} %{time_total}' "http://127.0.0.1:${exp_port[$e]}/metrics")
            echo "$line $(( $(cpu "$e") - before ))" >> "/tmp/$PREFIX.$e.$mode"
        done
    done
done
for e in "${names[@]}"; do
    for mode in identity gzip; do
        f="/tmp/$PREFIX.$e.$mode"
        bytes=$(awk '{s += $1 + $2} END {printf "%d", s / NR}' "$f")
        ms=$(awk '{print $3 * 1000}' "$f" | sort -n | awk '{a[NR]=$1} END {printf "p50 %.1f ms, p95 %.1f ms", a[int(NR*0.5)], a[int(NR*0.95)]}')
        cpu_ms=$(awk -v hz="$HZ" '{s += $4} END {printf "%.1f", s * 1000 / hz / NR}' "$f")
        echo "$(label "$e"): $mode: $bytes bytes on the wire per scrape; $ms; exporter CPU ${cpu_ms} ms per scrape"
    done
done
echo "gzip: $(awk '{s += $1 + $2} END {print s}' "/tmp/$PREFIX.new.identity") / $(awk '{s += $1 + $2} END {print s}' "/tmp/$PREFIX.new.gzip") = \
$(echo "scale=1; $(awk '{s += $1 + $2} END {print s}' "/tmp/$PREFIX.new.identity") / $(awk '{s += $1 + $2} END {print s}' "/tmp/$PREFIX.new.gzip")" | bc)x fewer bytes"
for e in "${names[@]}"; do
    rm -f "/tmp/$PREFIX.$e.identity" "/tmp/$PREFIX.$e.gzip" "/tmp/$PREFIX.$e.times" "/tmp/$PREFIX.$e.collect" "/tmp/$PREFIX.$e.prom"
done

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
    for e in "${names[@]}"; do curl -s -o /dev/null "http://127.0.0.1:${exp_port[$e]}/metrics"; done
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
if [ -n "$BASE" ]; then echo "$BASE: after churn RSS $(rss base) kB, peak $(hwm base) kB"; fi
