#!/usr/bin/env bash
# Where a request's CPU time goes under load, by component, and what the crosscut stack adds to
# each: the demo against `demo-conn` (the same serve loop and handlers, no middleware), and
# `bare-headers` (bare axum sending the contract's sixteen headers as constants) against bare.
#
#   benches/components.sh [runs] [seconds]
#
# Builds the four servers (release), then for each run starts one pair at a time (bare and
# bare-headers, then demo-conn and the demo), both under `taskset -c 0` at once (the demo with
# the access log off and a rate limit wrk never reaches), each driven by its own `wrk -t1 -c64`
# on `GET /api/v1/users` under `taskset -c 1`, and samples CPU 0 with `perf record -C 0` for the
# middle seconds. Each sample is put in one component by its symbol (kernel, allocator, memmove,
# header map, crosscut layers, hyper, axum, ...) and charged to its process; the table gives
# each component's CPU time per request (its samples' share of CPU 0 over the requests wrk
# counted in the same seconds), the median over the runs. The two servers of a pair share the
# core in the same seconds, as in `benches/ab.sh`, so the machine's drift cannot come between
# them: read the differences within a pair (the last two columns). Defaults: 4 runs, 5 s of
# samples (about 2 minutes with the build done). `COMPONENTS_SKIP_BUILD=1` uses the binaries
# already built. Needs Linux, perf (`apt-get install linux-perf`; root, or
# `kernel.perf_event_paranoid` at -1, to sample a CPU), wrk (`apt-get install wrk`), taskset,
# python3 and two CPUs.
set -euo pipefail

RUNS=${1:-4}
SECS=${2:-5}
cd "$(dirname "$0")/.."
for tool in perf wrk taskset python3; do
    command -v "$tool" >/dev/null || {
        echo "components.sh: $tool is missing (perf: apt-get install linux-perf; wrk: apt-get install wrk)" >&2
        exit 1
    }
done
if [ -z "${COMPONENTS_SKIP_BUILD:-}" ]; then
    cargo build --release -p crosscut-demo
    cargo build --release -p crosscut-suite --example bare --example bare-headers --example demo-conn
fi
OUT=$(mktemp -d)
# shellcheck source=benches/lib.sh
. benches/lib.sh
servers=()
trap 'stop_servers "$OUT"' EXIT

# start <name> <port>: the server, replacing the subshell so that its pid is the server's.
start() {
    local rel=target/release addr=127.0.0.1:$2
    case $1 in
    bare) exec taskset -c 0 $rel/examples/bare "$addr" ;;
    bare-headers) exec taskset -c 0 $rel/examples/bare-headers "$addr" ;;
    demo-conn) exec taskset -c 0 $rel/examples/demo-conn "$addr" ;;
    demo)
        exec env RUST_LOG=warn taskset -c 0 $rel/crosscut-demo --host 127.0.0.1 --port "$2" \
            --rate-limit-per-second 1000000000 --rate-limit-burst 1000000000 \
            --max-connections 20000
        ;;
    esac
}

# pair <run> <name> <name>: both on CPU 0 under load at once, CPU 0 sampled.
pair() {
    local run=$1 ports=() pids=() wrks=() i name
    shift
    local names=("$@")
    for name in "${names[@]}"; do
        ports+=("$(free_port)")
        start "$name" "${ports[-1]}" >"$OUT/$name.log" 2>&1 &
        pids+=($!)
    done
    servers=("${pids[@]}")
    for p in "${ports[@]}"; do wait_up "$p"; done
    # wrk runs 2 s before and 2 s after the samples, so they see only the steady state.
    for i in 0 1; do
        taskset -c 1 wrk -t1 -c64 -d$((SECS + 4))s "http://127.0.0.1:${ports[i]}/api/v1/users" \
            >"$OUT/wrk$i" &
        wrks+=($!)
    done
    sleep 2
    perf record -q -C 0 -o "$OUT/perf.data" -- sleep "$SECS" >/dev/null 2>&1
    # perf names a sample's thread; a server's threads are the tasks of its process.
    for i in 0 1; do ls "/proc/${pids[i]}/task" >"$OUT/tids$i"; done
    wait "${wrks[@]}"
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait "${pids[@]}" 2>/dev/null || true
    servers=()
    perf report -i "$OUT/perf.data" --no-children --stdio --percent-limit 0 --sort pid,sym \
        2>/dev/null | grep '%' >"$OUT/pair.syms" || true
    for i in 0 1; do
        name=${names[i]}
        awk '/Requests\/sec/{print $2}' "$OUT/wrk$i" >"$OUT/$name.$run.rate"
        # The samples of this server's threads only.
        awk 'NR == FNR { tid[$1]; next } { split($2, t, ":") } t[1] in tid' "$OUT/tids$i" \
            "$OUT/pair.syms" >"$OUT/$name.$run.syms"
        printf 'run %d %-13s %8.0f req/s\n' "$run" "$name" "$(cat "$OUT/$name.$run.rate")"
    done
}

for run in $(seq "$RUNS"); do
    pair "$run" bare bare-headers
    pair "$run" demo-conn demo
done

python3 - "$OUT" "$RUNS" <<'EOF'
import collections, re, statistics, sys

out, runs = sys.argv[1], int(sys.argv[2])
# First match wins: a sample belongs to the first component whose pattern its symbol matches.
COMPONENTS = [
    ("kernel", r"^\[k\]"),
    ("allocator", r"malloc|_int_free|cfree|realloc|__libc_free|unlink_chunk"),
    ("memmove", r"memmove|memcpy"),
    ("clock", r"clock_gettime|Timespec"),
    ("header map", r"http::header"),
    ("crosscut layers", r"crosscut::"),
    ("demo's own code", r"crosscut_demo|demo_conn"),
    ("hyper", r"hyper::|httparse"),
    ("tokio", r"tokio::|mio::"),
    ("axum", r"axum::|axum_core|matchit"),
    ("tower", r"tower::|tower_http"),
    ("serde", r"serde"),
    ("governor", r"governor|dashmap"),
    ("bytes", r"bytes::"),
    ("extensions, hash maps", r"hashbrown|http::extensions|AnyClone|type_id|hash_one|sip::"),
    ("futures", r"futures_util|Pin<P>"),
    ("libc other", r"libc|__send|__recv|epoll|pthread|writev"),
]
NAMES = ["bare", "bare-headers", "demo-conn", "demo"]
rows = [name for name, _ in COMPONENTS] + ["other", "user space", "all"]
per = {n: collections.defaultdict(list) for n in NAMES}
for n in NAMES:
    for run in range(1, runs + 1):
        rate = float(open(f"{out}/{n}.{run}.rate").read())
        share = collections.Counter()
        for line in open(f"{out}/{n}.{run}.syms"):
            m = re.match(r"\s*([\d.]+)%\s+\S+\s+\[(.)\]\s+(.*)", line)
            if not m:
                continue
            symbol = f"[{m.group(2)}] {m.group(3)}"
            for name, pattern in COMPONENTS:
                if re.search(pattern, symbol):
                    break
            else:
                name = "other"
            share[name] += float(m.group(1)) / 100
        us = {k: v / rate * 1e6 for k, v in share.items()}
        us["all"] = sum(share.values()) / rate * 1e6
        us["user space"] = us["all"] - us.get("kernel", 0.0)
        for row in rows:
            per[n][row].append(us.get(row, 0.0))
        per[n]["req/s"].append(rate)

print(f"\nCPU time per request, µs, median of {runs} run(s); wrk -t1 -c64 on GET /api/v1/users; "
      "each pair on CPU 0 at once")
print("\n| component | " + " | ".join(NAMES) + " | bare-headers − bare | demo − demo-conn |")
print("|---|" + "---:|" * (len(NAMES) + 2))
for row in rows:
    med = {n: statistics.median(per[n][row]) for n in NAMES}
    # The differences are taken run by run, within the pair that shared the core.
    diff = lambda a, b: statistics.median(x - y for x, y in zip(per[a][row], per[b][row]))
    print(f"| {row} | " + " | ".join(f"{med[n]:.2f}" for n in NAMES)
          + f" | {diff('bare-headers', 'bare'):+.2f} | {diff('demo', 'demo-conn'):+.2f} |")
med = {n: statistics.median(per[n]["req/s"]) for n in NAMES}
print("| req/s | " + " | ".join(f"{med[n]:.0f}" for n in NAMES) + " | | |")
EOF
