# Shared by the demo's scripts (sourced): background processes stopped on exit, and waiting for a server.
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# Waits for a server's ready line ("... listening on http://HOST:PORT/v1", "bakeoff dashboard on http://HOST:PORT/...")
# in a log and prints PORT.
wait_port() {
    local log="$1" name="$2"
    for _ in $(seq 1 200); do
        if grep -q " on http://" "$log" 2>/dev/null; then
            sed -n 's|.* on http://[^:/]*:\([0-9]*\)/.*|\1|p' "$log" | head -1
            return 0
        fi
        sleep 0.05
    done
    echo "demo: $name did not start:" >&2; cat "$log" >&2; return 1
}
