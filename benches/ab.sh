#!/usr/bin/env bash
# Two builds of the demo on one shared core: which one needs less CPU per request.
#
#   benches/ab.sh <demo binary A> <demo binary B> [connections] [seconds] [pairs]
#
# For a change to the demo or the library: build the demo before and after it
# (`cargo build --release -p crosscut-demo`, copying `target/release/crosscut-demo` aside each
# time), then run this. Both demos run at once under `taskset -c 0` (access log off, a rate
# limit wrk never reaches), each driven by its own `wrk -t1` under `taskset -c 1` on
# `GET /api/v1/users`; their CPU time per request (utime + stime from /proc/<pid>/stat over the
# requests wrk counted) is compared over the same seconds, so the machine's drift cannot come
# between them. Each pair runs twice, A started first and then B, and the line gives A's CPU per
# request over B's: above 1, B is cheaper. Defaults: 64 connections, 5 s, 3 pairs (about a
# minute). `AB_LOG=1` turns the access log on, each demo writing its log to a file as the
# load bench's `demo-log` does; `AB_LOG=A` turns it on for A only, so that
# `AB_LOG=A benches/ab.sh <demo> <demo>` measures what the access log costs. Needs Linux,
# taskset, wrk (`apt-get install wrk`), python3 and two CPUs.
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
A=$1
B=$2
CONNS=${3:-64}
SECS=${4:-5}
PAIRS=${5:-3}
# The access log on (INFO, to a file per demo) or off, for A and for B.
LEVEL_A=warn
LEVEL_B=warn
case ${AB_LOG:-} in
'') ;;
A) LEVEL_A=info ;;
*) LEVEL_A=info LEVEL_B=info ;;
esac
LOGS=$(mktemp -d)
command -v wrk >/dev/null || { echo "ab.sh: wrk is missing: apt-get install wrk" >&2; exit 1; }
command -v taskset >/dev/null || { echo "ab.sh: taskset is missing (util-linux)" >&2; exit 1; }

# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

servers=()
trap 'stop_servers "$LOGS"' EXIT

# One pair: $1 and $2 on CPU 0 at once, with RUST_LOG $3 and $4; prints first's CPU per
# request over second's.
pair() {
    local first=$1 second=$2 level1=$3 level2=$4 p1 p2 pid1 pid2
    p1=$(free_port)
    p2=$(free_port)
    local flags=(--host 127.0.0.1 --rate-limit-per-second 1000000000
        --rate-limit-burst 1000000000 --max-connections 20000)
    RUST_LOG=$level1 taskset -c 0 "$first" "${flags[@]}" --port "$p1" >"$LOGS/1.log" 2>&1 &
    pid1=$!
    RUST_LOG=$level2 taskset -c 0 "$second" "${flags[@]}" --port "$p2" >"$LOGS/2.log" 2>&1 &
    pid2=$!
    servers=("$pid1" "$pid2")
    wait_up "$p1"
    wait_up "$p2"
    # Warm both up together for a second.
    taskset -c 1 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$p1/api/v1/users" >/dev/null &
    local warm=$!
    taskset -c 1 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$p2/api/v1/users" >/dev/null
    wait "$warm"
    local c1 c2 out1 out2
    c1=$(cpu_ticks "$pid1")
    c2=$(cpu_ticks "$pid2")
    out1=$(mktemp)
    out2=$(mktemp)
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$p1/api/v1/users" >"$out1" &
    local w=$!
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$p2/api/v1/users" >"$out2"
    wait "$w"
    local d1 d2 r1 r2
    d1=$(($(cpu_ticks "$pid1") - c1))
    d2=$(($(cpu_ticks "$pid2") - c2))
    r1=$(awk '/requests in/{print $1}' "$out1")
    r2=$(awk '/requests in/{print $1}' "$out2")
    rm -f "$out1" "$out2"
    kill "$pid1" "$pid2" 2>/dev/null || true
    wait "$pid1" "$pid2" 2>/dev/null || true
    servers=()
    rm -f "$LOGS"/*.log
    python3 -c "
hz = $(getconf CLK_TCK)
c1, c2 = $d1 / hz / $r1, $d2 / hz / $r2
print(f'{c1 * 1e6:.2f} {c2 * 1e6:.2f} {c1 / c2:.4f} $r1 $r2')"
}

ratios=()
result=$(mktemp)
echo "A: $A"
echo "B: $B"
echo "$CONNS connections, $SECS s per run, both on CPU 0, RUST_LOG=$LEVEL_A for A, $LEVEL_B for B"
for i in $(seq "$PAIRS"); do
    pair "$A" "$B" "$LEVEL_A" "$LEVEL_B" >"$result"
    read -r ca cb r na nb <"$result"
    printf 'pair %d, A first: A %6.2f µs/req (%d req), B %6.2f µs/req (%d req), A/B %.3f\n' \
        "$i" "$ca" "$na" "$cb" "$nb" "$r"
    ratios+=("$r")
    pair "$B" "$A" "$LEVEL_B" "$LEVEL_A" >"$result"
    read -r cb ca r nb na <"$result"
    r=$(python3 -c "print(1 / $r)")
    printf 'pair %d, B first: A %6.2f µs/req (%d req), B %6.2f µs/req (%d req), A/B %.3f\n' \
        "$i" "$ca" "$na" "$cb" "$nb" "$r"
    ratios+=("$r")
done
rm -f "$result"
python3 -c "
import statistics
r = [$(IFS=,; echo "${ratios[*]}")]
print(f'A CPU per request / B CPU per request: median {statistics.median(r):.3f} of {len(r)} runs '
      f'(from {min(r):.3f} to {max(r):.3f}); above 1, B is cheaper')"
