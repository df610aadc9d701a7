# shellcheck shell=bash
# procs.sh: starting the loopback processes of the demos and benchmarks (sourced by
# tests/tools/cluster_demo.sh and tests/bench/scale.sh; not run on its own).
#
#   free_port                 print a free TCP port on 127.0.0.1
#   redis_start DIR           a private redis-server: a free loopback port, DIR as its
#                             directory (log DIR/redis.log), no persistence, never the system's
#                             service; sets REDIS_PID, REDIS_PORT, REDIS_URL
#   server_start LOG CMD...   start CMD (a lifeline-server) with its output in LOG and wait for
#                             its "listening on HOST:PORT" line; sets SERVER_PID, SERVER_ADDR
# Both return 1 (with the process's log on stderr) when the process does not come up. The
# caller stops the processes it started (by REDIS_PID / SERVER_PID).

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# shellcheck disable=SC2034 # REDIS_PID, REDIS_URL: set for the caller
redis_start() {
    local dir=$1 i
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
        --logfile "$dir/redis.log" --daemonize no &
    REDIS_PID=$!
    for ((i = 0; i < 100; i++)); do
        if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
            REDIS_URL=redis://127.0.0.1:$REDIS_PORT
            return 0
        fi
        sleep 0.05
    done
    echo "redis-server did not start; its log:" >&2
    cat "$dir/redis.log" >&2
    return 1
}

# A port just freed (a restart on the same port) may be refused for a moment: tried again,
# 20 times. A server that neither listens nor exits within 10 s is stopped.
server_start() {
    local log=$1 n try
    shift
    for ((try = 0; try < 20; try++)); do
        : >"$log"
        "$@" >>"$log" 2>&1 &
        SERVER_PID=$!
        for ((n = 0; n < 1000; n++)); do
            SERVER_ADDR=$(grep -o -m 1 'listening on [^ ]*' "$log" | sed 's/^listening on //' || true)
            [[ -n $SERVER_ADDR ]] && return 0
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.01
        done
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        sleep 0.1
    done
    echo "$1 did not print 'listening on HOST:PORT'; its output:" >&2
    cat "$log" >&2
    return 1
}
