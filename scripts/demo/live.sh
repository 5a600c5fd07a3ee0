#!/usr/bin/env bash
# The live loop of `make demo`: two mock model servers (v1 slower and less helpful, v2 faster and better),
# the gateway in front of them, simulated users chatting and leaving feedback, then the report.
# Usage: BAKEOFF_BIN=... bash scripts/demo/live.sh [OUT_DIR]   (DEMO_SECONDS=30 by default)
set -euo pipefail
BIN="${BAKEOFF_BIN:?set BAKEOFF_BIN}"
OUT="${1:-out}/live"
SECONDS_OF_TRAFFIC="${DEMO_SECONDS:-30}"
mkdir -p "$OUT"
rm -f "$OUT"/bakeoff.db "$OUT"/bakeoff.db-wal "$OUT"/bakeoff.db-shm
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$BIN" mock-upstream --port 0 --latency-ms 120 --jitter-ms 40 --tokens-per-second 150 --output-tokens 30 --seed 1 2>"$OUT/mock-v1.log" &
PIDS+=($!)
"$BIN" mock-upstream --port 0 --latency-ms 80 --jitter-ms 30 --tokens-per-second 200 --output-tokens 24 --seed 2 2>"$OUT/mock-v2.log" &
PIDS+=($!)
V1=$(wait_port "$OUT/mock-v1.log" "mock upstream v1")
V2=$(wait_port "$OUT/mock-v2.log" "mock upstream v2")

# The plan, fixed before the start: the live default, auto, which with a horizon (planned_users: about the
# 1,500 users the demo's 30 seconds reach) is a group-sequential test, valid at every look while traffic runs;
# guardrails with margins (escalation may rise at most 1 point, P95 latency at most 15%), no minimum runtime
# since the demo runs for seconds (a real plan keeps the default of a full week).
ANALYSIS='{"method": "auto", "planned_users": 1500, "min_runtime_days": 0, "primary_metric": "task_completion",
  "metrics": [{"name": "escalation_rate", "margin": 0.01},
              {"name": "latency_p95", "role": "guardrail", "margin_relative": 0.15}]}'
echo "{\"split\": 0.5, ${ANALYSIS#\{}" > "$OUT/plan.json"

cat > "$OUT/gateway.json" <<JSON
{
  "listen": "127.0.0.1:0",
  "store": {"path": "$OUT/bakeoff.db"},
  "experiments": [{
    "name": "support-bot-v2",
    "model": "support-bot",
    "split": 0.5,
    "log_content": true,
    "analysis": $ANALYSIS,
    "variants": [
      {"name": "control", "upstream": {"base_url": "http://127.0.0.1:$V1/v1", "model": "support-v1"}},
      {"name": "treatment", "upstream": {"base_url": "http://127.0.0.1:$V2/v1", "model": "support-v2"},
       "system_prompt": "You are a concise, friendly support agent."}
    ]
  }]
}
JSON
"$BIN" serve --config "$OUT/gateway.json" --check >/dev/null
BAKEOFF_ADMIN_KEY=demo-admin-key-not-secret "$BIN" serve --config "$OUT/gateway.json" 2>"$OUT/gateway.log" &
GATEWAY=$!
PIDS+=($GATEWAY)
PORT=$(wait_port "$OUT/gateway.log" "the gateway")
echo "   mock upstreams on :$V1 (v1: ~120 ms, control) and :$V2 (v2: ~80 ms, treatment); gateway on :$PORT (50/50 split)"
echo "   $SECONDS_OF_TRAFFIC s of simulated users chatting in conversations and leaving feedback..."
"$BIN" traffic --gateway "http://127.0.0.1:$PORT" --model support-bot --users 2400 --duration "$SECONDS_OF_TRAFFIC" --concurrency 32
echo "   stopping the gateway (SIGTERM: finishes requests in flight, flushes the store)"
kill -TERM "$GATEWAY"
wait "$GATEWAY"
echo
"$BIN" analyze --db "$OUT/bakeoff.db" --config "$OUT/plan.json"
"$BIN" analyze --db "$OUT/bakeoff.db" --config "$OUT/plan.json" --format html > "$OUT/report.html"
"$BIN" export --db "$OUT/bakeoff.db" --output "$OUT/events.jsonl"
echo "The live experiment's store: $OUT/bakeoff.db ($(wc -l < "$OUT/events.jsonl") events, also in $OUT/events.jsonl); the page: $OUT/report.html"
