#!/usr/bin/env bash
# The offline part of `make demo`: the support bot's v1 and v2 on a sample of its requests, judged, before the
# live A/B (`before`); then, after it, a sample drawn from the live store and the live result beside the
# offline one (`after`).
# Usage: BAKEOFF_BIN=... bash scripts/demo/offline.sh OUT_DIR before|after
set -euo pipefail
BIN="${BAKEOFF_BIN:?set BAKEOFF_BIN}"
OUT="${1:-out}/offline"
PHASE="${2:-before}"
mkdir -p "$OUT"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# One mock server plays both model versions (v2 answers correctly more often: 75% against 60%) and the judge
# (MT-Bench's format; it picks the first answer shown 20% of the time, as real judges lean).
# The same port in both phases: a variant is its upstream's URL, model, prompt and parameters, and the cache keeps
# answers by that definition.
MOCK_PORT=0
if [[ "$PHASE" == after && -f "$OUT/mock.port" ]]; then MOCK_PORT=$(cat "$OUT/mock.port"); fi
"$BIN" mock-upstream --port "$MOCK_PORT" --latency-ms 30 --jitter-ms 10 --tokens-per-second 0 --seed 3 \
    --quality support-v1=0.6 --quality support-v2=0.75 --quality-noise 0.1 \
    --judge-model judge --judge-position-bias 0.2 2>"$OUT/mock.log" &
PIDS+=($!)
PORT=$(wait_port "$OUT/mock.log" "the mock upstream")
echo "$PORT" > "$OUT/mock.port"

cat > "$OUT/bakeoff.json" <<JSON
{
  "store": {"path": "$OUT/../live/bakeoff.db"},
  "experiments": [{
    "name": "support-bot-v2",
    "model": "support-bot",
    "split": 0.5,
    "analysis": {"primary_metric": "task_completion", "mde": 0.05},
    "variants": [
      {"name": "control", "upstream": {"base_url": "http://127.0.0.1:$PORT/v1", "model": "support-v1"}},
      {"name": "treatment", "upstream": {"base_url": "http://127.0.0.1:$PORT/v1", "model": "support-v2"},
       "system_prompt": "You are a concise, friendly support agent."}
    ],
    "eval": {
      "judge": {"upstream": {"base_url": "http://127.0.0.1:$PORT/v1", "model": "judge"}},
      "scorers": [{"type": "judge_pairwise", "name": "preference"}, {"type": "exact_match"}, {"type": "token_f1"}],
      "guardrails": [{"metric": "latency_ms", "margin": "20%"}],
      "live_baseline": 0.75,
      "concurrency": 16
    }
  }]
}
JSON

if [[ "$PHASE" == before ]]; then
    rm -f "$OUT"/eval-cache.db*
    "$BIN" mock-dataset --size 300 --seed 1 --output "$OUT/requests.jsonl" 2>/dev/null
    echo "   300 support requests (with their expected answers) -> $OUT/requests.jsonl; v1 and v2 answer each, the judge"
    echo "   compares every pair in both orders ($OUT/bakeoff.json, \"eval\")"
    echo
    "$BIN" eval --config "$OUT/bakeoff.json" --dataset "$OUT/requests.jsonl" --cache "$OUT/eval-cache.db"
    "$BIN" eval --config "$OUT/bakeoff.json" --dataset "$OUT/requests.jsonl" --cache "$OUT/eval-cache.db" \
        --format html --output "$OUT/eval.html" 2>/dev/null
    echo "The same report with the answers side by side: $OUT/eval.html (made from the cache: no call repeated)"
else
    echo "   a sample of the live traffic, uniform over users, as a dataset for the next offline round:"
    "$BIN" sample --db "$OUT/../live/bakeoff.db" --experiment support-bot-v2 --size 50 --output "$OUT/live-sample.jsonl"
    echo
    echo "   the offline eval again (from its cache), now with the live result beside it:"
    "$BIN" eval --config "$OUT/bakeoff.json" --dataset "$OUT/requests.jsonl" --cache "$OUT/eval-cache.db" \
        --db "$OUT/../live/bakeoff.db" --format markdown | sed -n '/Live experiment/,+2p'
fi
