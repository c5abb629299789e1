# Shell helpers shared by benches/ab.sh and benches/components.sh; sourced, not run.

# A free TCP port on loopback.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to 10 s for a server to accept connections on loopback port $1.
wait_up() {
    for _ in $(seq 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.1)" \
            2>/dev/null && return 0
        sleep 0.1
    done
    echo "$(basename "$0"): no server on port $1" >&2
    return 1
}

# The scripts' exit trap: kills the servers whose pids are in the array `servers`, waits for
# them, and removes the scratch directory $1.
stop_servers() {
    for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$1"
}
