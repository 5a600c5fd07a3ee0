#!/usr/bin/env bash
# `make screenshots`: the dashboard's pages at desktop and phone widths, for the README (docs/screenshots/).
#
# Two weeks of the case study end today (`bakeoff simulate`, imported into a store), the offline eval of the demo
# is run into its cache, and `bakeoff dashboard` serves both with a key; scripts/screenshots.py signs in and
# saves each page at 1280 and 390 px wide. Everything runs on this machine (mock upstreams, no network).
set -euo pipefail
BIN="${BAKEOFF_BIN:?set BAKEOFF_BIN}"
PY="${TEST_PY:?set TEST_PY (a Python with playwright)}"
OUT="${1:-out}"
DOCS="${2:-docs/screenshots}"
WORK="$OUT/screens"
rm -rf "$WORK"
mkdir -p "$WORK" "$DOCS"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

START=$(date -u -d "13 days ago" +%Y-%m-%dT00:00:00Z)
cat > "$WORK/spec.json" <<JSON
{"preset": "seed-case-study", "start": "$START", "users": 6000}
JSON
"$BIN" simulate --spec "$WORK/spec.json" --experiment support-bot-v2 --days 14 --output "$WORK/history.jsonl"
# In time order, as a gateway writes (the simulator writes user by user).
LC_ALL=C sort -s -t'"' -k8,8 -o "$WORK/history.jsonl" "$WORK/history.jsonl"
"$BIN" import --db "$WORK/bakeoff.db" "$WORK/history.jsonl" >/dev/null
cat > "$WORK/bakeoff.json" <<JSON
{
  "store": {"path": "$WORK/bakeoff.db"},
  "experiments": [{
    "name": "support-bot-v2", "model": "support-bot", "split": 0.2,
    "analysis": {"primary_metric": "task_completion", "mde": 0.05},
    "variants": [
      {"name": "control", "upstream": {"base_url": "http://127.0.0.1:9/v1", "model": "support-v1"}},
      {"name": "treatment", "upstream": {"base_url": "http://127.0.0.1:9/v1", "model": "support-v2"}}
    ]
  }]
}
JSON
# The offline eval of the demo (mock models and judge), kept in its cache.
BAKEOFF_BIN="$BIN" bash "$(dirname "${BASH_SOURCE[0]}")/offline.sh" "$WORK" before >/dev/null

KEY="screenshot-key-$RANDOM$RANDOM"
BAKEOFF_ADMIN_KEY="$KEY" "$BIN" dashboard --db "$WORK/bakeoff.db" --config "$WORK/bakeoff.json" \
    --evals "$WORK/offline/eval-cache.db" --listen 127.0.0.1:0 --refresh 0 2>"$WORK/dashboard.log" &
PIDS+=($!)
PORT=$(wait_port "$WORK/dashboard.log" "the dashboard")
BASE="http://127.0.0.1:$PORT"
"$PY" scripts/screenshots.py --base "$BASE" --key "$KEY" --out "$DOCS" \
    experiments=/dashboard experiment=/dashboard/experiments/support-bot-v2 eval=/dashboard/evals/0-1
echo "screenshots of the dashboard -> $DOCS"
