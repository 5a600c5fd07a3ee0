#!/usr/bin/env bash
# Bakeoff's benchmark suite: `make bench` (or BAKEOFF_BIN=... PY=... bash scripts/bench/run.sh).
#
#   a. assignment: the seed's Python ABRouter (scripts/bench/assign_bench.py) vs `bakeoff assign`, one core;
#   b. analysis of a ~10-million-event log: `bakeoff analyze` (one core) vs pandas + scipy
#      (scripts/bench/pandas_analysis.py, the same analysis, one core), events/s and peak RSS;
#   c. what bakeoff's peak RSS scales with: three logs, (users, events) = (U/4, E/4), (U, E) and (U/4, ~E);
#   plus a correctness check that pandas and bakeoff computed the same numbers (small log and the big one);
#   d. gateway overhead and throughput: direct to a mock upstream vs `bakeoff serve` vs the LiteLLM proxy
#      (scripts/bench/gateway.py; section "Gateway overhead and throughput", results in $BENCH_OUT/gateway.json);
#   e. gateway soak: chat and feedback traffic under 5,000 slowloris connections, a full disk and a kill -9
#      (scripts/bench/soak.py; section "Gateway soak", results in $BENCH_OUT/soak.json; ~3 minutes).
#
# Data goes to out/bench/ (gitignored); simulated logs are reused when they exist with the same parameters
# (and the same bakeoff binary), timings are always re-measured. The shared 2-core machine is noisy, so every
# comparison is against a baseline measured in the same run, and Swift timings are medians of BENCH_RUNS runs.
#
# Environment (defaults give the full run, ~8-10 minutes including log generation):
#   BAKEOFF_BIN          .build/release/bakeoff          PY   .venv/bin/python
#   BENCH_IDS            1000000   ids for the assignment benchmark
#   BENCH_EVENTS_USERS   620000    users in the big log (~16.4 events per user -> ~10M events)
#   BENCH_SMALL_USERS    BENCH_EVENTS_USERS/4, for the memory-scaling logs
#   BENCH_CHECK_USERS    20000     users in the pandas-vs-bakeoff agreement log
#   BENCH_RUNS           3         timed runs per bakeoff command (median reported)
#   BENCH_PANDAS         1         0 skips the (slow) pandas run on the big log
#   BENCH_OUT            out/bench
#   BENCH_MARKDOWN       BENCHMARKS.md for the default sizes, else $BENCH_OUT/BENCHMARKS.quick.md
#   BENCH_ONLY           gateway: run only part d (written into BENCHMARKS.md, or the quick file in quick mode)
#   BENCH_GATEWAY        1         0 skips part d
#   BENCH_GATEWAY_QUICK  0         1: short gateway runs (2 rounds of 3 s), written to $BENCH_OUT/BENCHMARKS.quick.md
#   LITELLM_BIN          .venv-litellm/bin/litellm; BENCH_GATEWAY_LITELLM=0 leaves LiteLLM out
#   BENCH_ONLY           soak: run only part e (as root, for its tmpfs); BENCH_SOAK=0 skips it;
#   BENCH_SOAK_SHORT     0         1: the short soak of `make test`, written to $BENCH_OUT/BENCHMARKS.quick.md
#   (more gateway settings: scripts/bench/gateway.py --help)
# Quick run: BENCH_EVENTS_USERS=40000 BENCH_IDS=200000 make bench
# Quick gateway-only run: BENCH_ONLY=gateway BENCH_GATEWAY_QUICK=1 make bench
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
START_SECONDS=$SECONDS

BIN="${BAKEOFF_BIN:-$ROOT/.build/release/bakeoff}"
PY="${PY:-$ROOT/.venv/bin/python}"
IDS="${BENCH_IDS:-1000000}"
USERS="${BENCH_EVENTS_USERS:-620000}"
SMALL_USERS="${BENCH_SMALL_USERS:-$((USERS / 4))}"
CHECK_USERS="${BENCH_CHECK_USERS:-20000}"
RUNS="${BENCH_RUNS:-3}"
RUN_PANDAS="${BENCH_PANDAS:-1}"
OUT="${BENCH_OUT:-$ROOT/out/bench}"
if [[ -z "${BENCH_MARKDOWN:-}" ]]; then
    if [[ "$IDS" == 1000000 && "$USERS" == 620000 && "$SMALL_USERS" == 155000 && "$RUN_PANDAS" == 1 ]]; then
        BENCH_MARKDOWN="$ROOT/BENCHMARKS.md"
    else
        BENCH_MARKDOWN="$OUT/BENCHMARKS.quick.md"
    fi
fi
EXPERIMENT_ASSIGN="fine-tuned-v2-test"
SPLIT=0.2
SEED=1
CONV_DENSE=10   # conversations per user in the "same users, ~4x events" log (the preset has 2.5)

RUN_GATEWAY="${BENCH_GATEWAY:-1}"
LITELLM_BIN="${LITELLM_BIN:-$ROOT/.venv-litellm/bin/litellm}"
[[ "${BENCH_GATEWAY_LITELLM:-1}" == 0 ]] && LITELLM_BIN=""

log() { printf '[bench %4ds] %s\n' "$((SECONDS - START_SECONDS))" "$*" >&2; }

# d. gateway overhead and throughput (stdlib Python; manages and always stops its own processes).
run_gateway() {
    local md="${BENCH_GATEWAY_MARKDOWN:-}" cmd="" v
    if [[ -z "$md" ]]; then
        if [[ "${BENCH_GATEWAY_QUICK:-0}" != 0 ]]; then md="$OUT/BENCHMARKS.quick.md"
        elif [[ "${BENCH_ONLY:-}" == gateway ]]; then md="$ROOT/BENCHMARKS.md"
        else md="$BENCH_MARKDOWN"; fi
    fi
    for v in BENCH_ONLY BENCH_GATEWAY_QUICK BENCH_GATEWAY_ROUNDS BENCH_GATEWAY_DURATION BENCH_GATEWAY_WARMUP \
             BENCH_GATEWAY_RATE BENCH_GATEWAY_LOW_RATE BENCH_GATEWAY_CONCURRENCY BENCH_LITELLM_WORKERS BENCH_GATEWAY_LITELLM; do
        [[ -n "${!v:-}" ]] && cmd+="$v=${!v} "
    done
    [[ -z "$LITELLM_BIN" || -x "$LITELLM_BIN" ]] || { echo "bench: $LITELLM_BIN not found (make bench installs .venv-litellm)" >&2; exit 1; }
    log "gateway: direct vs bakeoff serve vs LiteLLM (scripts/bench/gateway.py) -> $md"
    mkdir -p "$OUT"
    BENCH_COMMAND="${cmd}make bench" python3 "$ROOT/scripts/bench/gateway.py" --bin "$BIN" --litellm "$LITELLM_BIN" \
        --out "$OUT" --markdown "$md" > "$OUT/gateway.md"
    log "gateway: wrote $OUT/gateway.json and the section in $md"
}
# e. gateway soak (stdlib Python; manages and always stops its own processes, unmounts its tmpfs).
run_soak() {
    local md="$BENCH_MARKDOWN" cmd="" short=()
    [[ "${BENCH_ONLY:-}" == soak ]] && md="$ROOT/BENCHMARKS.md"
    if [[ "${BENCH_SOAK_SHORT:-0}" != 0 ]]; then md="$OUT/BENCHMARKS.quick.md"; short=(--short); fi
    [[ -n "${BENCH_ONLY:-}" ]] && cmd+="BENCH_ONLY=$BENCH_ONLY "
    [[ -n "${BENCH_SOAK_SHORT:-}" ]] && cmd+="BENCH_SOAK_SHORT=$BENCH_SOAK_SHORT "
    log "soak: traffic under slowloris, a full disk and a kill -9 (scripts/bench/soak.py) -> $md"
    mkdir -p "$OUT"
    BENCH_COMMAND="${cmd}make bench" python3 "$ROOT/scripts/bench/soak.py" --bin "$BIN" --out "$OUT" --markdown "$md" \
        "${short[@]}" > "$OUT/soak.txt" || { cat "$OUT/soak.txt"; echo "bench: the soak's invariants do not hold (see $OUT/soak.json)" >&2; return 1; }
    cat "$OUT/soak.txt"
    log "soak: wrote $OUT/soak${short:+-short}.json and the section in $md"
}
if [[ "${BENCH_ONLY:-}" == gateway ]]; then
    [[ -x "$BIN" ]] || { echo "bench: $BIN not found or not executable (make build)" >&2; exit 1; }
    run_gateway
    exit 0
fi
if [[ "${BENCH_ONLY:-}" == soak ]]; then
    [[ -x "$BIN" ]] || { echo "bench: $BIN not found or not executable (make build)" >&2; exit 1; }
    run_soak
    exit 0
fi

RES="$OUT/results"
mkdir -p "$OUT" "$RES"
rm -f "$RES"/*.json "$RES/generated.txt"
TIMEIT=("$PY" "$ROOT/scripts/bench/timeit_cmd.py")

[[ -x "$BIN" ]] || { echo "bench: $BIN not found or not executable (make build)" >&2; exit 1; }
[[ -x "$PY" ]] || { echo "bench: $PY not found (make venv)" >&2; exit 1; }
command -v taskset >/dev/null || { echo "bench: taskset not found (util-linux)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "bench: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }

# simulate NAME USERS [SPEC]: out/bench/NAME.jsonl, reused when NAME.params records the same simulate arguments
# (rm -rf out/bench after a change to the simulator's output format).
BIN_SUM="$(sha256sum "$BIN" | cut -c1-16)"
simulate() {
    local name="$1" users="$2" spec="${3:-}"
    local file="$OUT/$name.jsonl" params="$OUT/$name.params"
    local args=(simulate --users "$users" --seed "$SEED")
    if [[ -n "$spec" ]]; then
        printf '%s\n' "$spec" > "$OUT/$name.spec.json"
        args+=(--spec "$OUT/$name.spec.json")
    else
        args+=(--preset seed-case-study)
    fi
    local want="bakeoff ${args[*]}${spec:+ # spec: $spec}"
    if [[ -f "$file" && -f "$params" && "$(head -1 "$params")" == "$want" ]]; then
        log "reusing $file"
    else
        log "generating $file ($users users; not timed)"
        rm -f "$params"
        "$BIN" "${args[@]}" --output "$file.tmp"
        mv "$file.tmp" "$file"
        basename "$file" >> "$RES/generated.txt"
        printf '%s\n%s\n' "$want" "generated $(date -u +%FT%TZ) by binary sha256 $BIN_SUM" > "$params"
    fi
    printf '%s\n' "$file"
}
lines() { wc -l < "$1" | tr -d ' '; }

# ---------------------------------------------------------------- machine
{
    echo "{"
    echo "  \"date\": \"$(date -u +%F)\","
    echo "  \"started_utc\": \"$(date -u +%FT%TZ)\","
    echo "  \"nproc\": $(nproc),"
    echo "  \"cpu_model\": \"$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^[^:]*: *//; s/"/\\"/g')\","
    echo "  \"mem_total_kb\": $(awk '/^MemTotal/ {print $2}' /proc/meminfo),"
    echo "  \"kernel\": \"$(uname -sr)\","
    echo "  \"git_commit\": \"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\","
    echo "  \"git_dirty\": $([[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] && echo true || echo false),"
    echo "  \"swift\": \"$( (swift --version 2>/dev/null || /opt/swift/usr/bin/swift --version 2>/dev/null || echo unknown) | head -1 | sed 's/"/\\"/g')\","
    echo "  \"python\": \"$("$PY" -c 'import platform, pandas, numpy, scipy; print(f"Python {platform.python_version()}, pandas {pandas.__version__}, numpy {numpy.__version__}, scipy {scipy.__version__}")')\","
    echo "  \"bakeoff_sha256\": \"$BIN_SUM\","
    echo "  \"load_average_at_start\": \"$(cut -d' ' -f1-3 /proc/loadavg)\""
    echo "}"
} > "$RES/machine.json"
log "machine: $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | sed 's/^[^:]*: *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- 0. agreement on a small log
CHECK_LOG="$(simulate "check-${CHECK_USERS}u" "$CHECK_USERS")"
log "agreement check: bakeoff analyze vs pandas_analysis.py on $CHECK_LOG"
"$BIN" analyze "$CHECK_LOG" --split "$SPLIT" --format json > "$OUT/check.bakeoff.json"
"$PY" scripts/bench/pandas_analysis.py "$CHECK_LOG" --split "$SPLIT" > "$OUT/check.pandas.json"
AGREE_SMALL=0
"$PY" scripts/bench/check_agreement.py "$OUT/check.pandas.json" "$OUT/check.bakeoff.json" \
    > "$RES/agreement_small.json" || AGREE_SMALL=1
log "agreement (small): $(cat "$RES/agreement_small.json")"

# ---------------------------------------------------------------- a. assignment
IDS_FILE="$OUT/ids-$IDS.txt"
log "assignment: Python ABRouter, $IDS ids, taskset -c 0 (best of 3, CPU time)"
if [[ -f "$IDS_FILE" ]]; then
    taskset -c 0 "$PY" scripts/bench/assign_bench.py "$IDS" --experiment "$EXPERIMENT_ASSIGN" --split "$SPLIT" \
        > "$RES/assign_python.json"
else
    taskset -c 0 "$PY" scripts/bench/assign_bench.py "$IDS" --experiment "$EXPERIMENT_ASSIGN" --split "$SPLIT" \
        --write-ids "$IDS_FILE" > "$RES/assign_python.json"
fi
log "assignment: bakeoff assign, taskset -c 0, $RUNS runs"
"${TIMEIT[@]}" --runs "$RUNS" --cpu 0 --stdin "$IDS_FILE" --stdout "$OUT/assign.out" -- \
    "$BIN" assign --experiment "$EXPERIMENT_ASSIGN" --split "$SPLIT" > "$RES/assign_bakeoff.json"
log "assignment: bakeoff assign on empty input (process start-up), taskset -c 0, $RUNS runs"
"${TIMEIT[@]}" --runs "$RUNS" --cpu 0 -- \
    "$BIN" assign --experiment "$EXPERIMENT_ASSIGN" --split "$SPLIT" > "$RES/assign_bakeoff_empty.json"
{
    echo "{\"ids\": $(lines "$IDS_FILE"), \"output_lines\": $(lines "$OUT/assign.out"),"
    echo " \"treatment\": $(grep -c '^treatment$' "$OUT/assign.out" || true)}"
} > "$RES/assign_counts.json"

# ---------------------------------------------------------------- b/c. analysis
BIG_LOG="$(simulate "events-${USERS}u" "$USERS")"
SMALL_LOG="$(simulate "events-${SMALL_USERS}u" "$SMALL_USERS")"
DENSE_LOG="$(simulate "events-${SMALL_USERS}u-conv${CONV_DENSE}" "$SMALL_USERS" \
    "{\"preset\": \"seed-case-study\", \"conversations_per_user\": $CONV_DENSE}")"

analyze_timed() {  # analyze_timed KEY LOG [EXTRA ARGS...]
    local key="$1" file="$2"
    shift 2
    log "bakeoff analyze $(basename "$file") $*: taskset -c 0, $RUNS runs"
    "${TIMEIT[@]}" --runs "$RUNS" --cpu 0 --stdout "$OUT/$key.bakeoff.json" -- \
        "$BIN" analyze "$file" --split "$SPLIT" --format json "$@" > "$RES/analyze_$key.json"
    "$PY" - "$file" "$(lines "$file")" "$(stat -c %s "$file")" "$OUT/$key.bakeoff.json" > "$RES/log_$key.json" <<'EOF'
import json, sys
path, lines, size, report = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.load(open(sys.argv[4]))
json.dump({"file": path, "lines": lines, "bytes": size, "requests": report["events"]["requests"],
           "feedback": report["events"]["feedback"], "users": sum(v["users"] for v in report["variants"])},
          sys.stdout)
EOF
}
analyze_timed big "$BIG_LOG"
analyze_timed small "$SMALL_LOG"
analyze_timed dense "$DENSE_LOG"
# The same logs read in memory (--partitions 1); above 512 MB the default reads in pieces.
analyze_timed big_memory "$BIG_LOG" --partitions 1
analyze_timed small_memory "$SMALL_LOG" --partitions 1

AGREE_BIG=0
if [[ "$RUN_PANDAS" == 1 ]]; then
    log "pandas_analysis.py $(basename "$BIG_LOG"): taskset -c 0, 1 run (slow)"
    "${TIMEIT[@]}" --runs 1 --cpu 0 --stdout "$OUT/big.pandas.json" -- \
        "$PY" scripts/bench/pandas_analysis.py "$BIG_LOG" --split "$SPLIT" > "$RES/analyze_pandas.json"
    "$PY" scripts/bench/check_agreement.py "$OUT/big.pandas.json" "$OUT/big.bakeoff.json" \
        > "$RES/agreement_big.json" || AGREE_BIG=1
    log "agreement (big): $(cat "$RES/agreement_big.json")"
fi

# ---------------------------------------------------------------- report
echo "{\"run_sh_seconds\": $((SECONDS - START_SECONDS)), \"runs\": $RUNS}" > "$RES/runtime.json"
"$PY" scripts/bench/report.py "$RES" --markdown "$BENCH_MARKDOWN"
log "wrote $BENCH_MARKDOWN"
[[ "$RUN_GATEWAY" == 0 ]] || run_gateway
SOAK_FAILED=0
[[ "${BENCH_SOAK:-1}" == 0 ]] || run_soak || SOAK_FAILED=1
if [[ "$AGREE_SMALL" != 0 || "$AGREE_BIG" != 0 ]]; then
    echo "bench: pandas and bakeoff DISAGREE (see $RES/agreement_*.json)" >&2
    exit 1
fi
[[ "$SOAK_FAILED" == 0 ]] || exit 1
