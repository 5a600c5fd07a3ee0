#!/usr/bin/env bash
# Bytes per event in the event store: simulated users chat with a gateway (in conversations, leaving feedback)
# in front of a mock upstream, once without and once with log_content; the store's events are then split by
# kind and loaded into fresh stores, whose file size (after close, the WAL checkpointed) over the event count
# is the figure. Loopback only.
# Usage: BAKEOFF_BIN=... bash scripts/bench/store_size.sh [OUT_DIR]   (STORE_SECONDS=20 of traffic per run)
set -euo pipefail
BIN="${BAKEOFF_BIN:?set BAKEOFF_BIN}"
OUT="${1:-out}/store-size"
SECONDS_OF_TRAFFIC="${STORE_SECONDS:-20}"
rm -rf "$OUT"
mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() {
    local log="$1"
    for _ in $(seq 1 200); do
        if grep -q "listening on http://" "$log" 2>/dev/null; then
            sed -n 's|.*listening on http://[^:]*:\([0-9]*\)/v1.*|\1|p' "$log" | head -1
            return 0
        fi
        sleep 0.05
    done
    echo "store_size: did not start:" >&2; cat "$log" >&2; return 1
}

"$BIN" mock-upstream --port 0 --output-tokens 30 --seed 1 2>"$OUT/mock.log" &
PIDS+=($!)
MOCK=$(wait_port "$OUT/mock.log")

size() { stat -c %s "$1"; }
row() {  # kind, file: events, mean line bytes, bytes per event (= MB per million events)
    local kind="$1" lines="$2" db="$OUT/$3.db"
    "$BIN" import --db "$db" "$lines" 2>/dev/null
    local n bytes
    n=$(wc -l < "$lines")
    bytes=$(size "$db")
    awk -v k="$kind" -v n="$n" -v l="$(wc -c < "$lines")" -v b="$bytes" \
        'BEGIN { printf "| %s | %d | %.0f | %.0f |\n", k, n, l / n - 1, b / n }'
}

echo "| events | count | mean line (bytes) | store bytes per event (= MB per million) |"
echo "| --- | --- | --- | --- |"
for content in false true; do
    dir="$OUT/content-$content"
    mkdir -p "$dir"
    cat > "$dir/gateway.json" <<JSON
{"listen": "127.0.0.1:0", "log_content": $content, "store": {"path": "$dir/bakeoff.db"},
 "experiments": [{"name": "size", "model": "support-bot", "split": 0.5, "variants": [
   {"name": "control", "upstream": {"base_url": "http://127.0.0.1:$MOCK/v1", "model": "m1"}},
   {"name": "treatment", "upstream": {"base_url": "http://127.0.0.1:$MOCK/v1", "model": "m2"}}]}]}
JSON
    "$BIN" serve --config "$dir/gateway.json" 2>"$dir/gateway.log" &
    GATEWAY=$!
    PIDS+=($GATEWAY)
    PORT=$(wait_port "$dir/gateway.log")
    "$BIN" traffic --gateway "http://127.0.0.1:$PORT" --users 20000 --duration "$SECONDS_OF_TRAFFIC" --concurrency "${STORE_CONCURRENCY:-256}" >/dev/null 2>&1
    kill -TERM "$GATEWAY"
    wait "$GATEWAY" || true
    "$BIN" export --db "$dir/bakeoff.db" --include-qa --output "$dir/events.jsonl"
    grep '"event":"request"' "$dir/events.jsonl" > "$dir/requests.jsonl"
    grep '"event":"feedback"' "$dir/events.jsonl" > "$dir/feedback.jsonl"
    label=$([ "$content" = true ] && echo "with content" || echo "without content")
    row "request, $label" "$dir/requests.jsonl" "requests-$content"
    [ "$content" = false ] && row "feedback" "$dir/feedback.jsonl" "feedback"
    requests=$(wc -l < "$dir/requests.jsonl")
    feedback=$(wc -l < "$dir/feedback.jsonl")
    awk -v r="$requests" -v f="$feedback" -v b="$(size "$dir/bakeoff.db")" -v l="$label" \
        'BEGIN { printf "| the gateway'"'"'s store: requests %s and their feedback (%.2f per request) | %d | | %.0f per request |\n", l, f / r, r + f, b / r }'
done
