#!/usr/bin/env bash
# cluster_demo.sh: a live failover demo on loopback (run through `bash setup.sh cluster-demo`,
# which installs the dependencies and builds first).
#
# A private redis-server (its own temp directory, a free loopback port, persistence off; never
# the system's service), three lifeline-server --store redis://... --store-sync always
# instances, and one lifeline-cat --connect given all three, streaming numbered lines
# while each instance in turn is stopped by SIGTERM and started again (a rolling restart),
# then the instance the client is on is killed with kill -9. Prints the counts and exits
# non-zero if a line was lost or duplicated, or if the client never moved.
#
# Usage: tests/tools/cluster_demo.sh BUILD_DIR
set -euo pipefail

BIN=${1:?usage: cluster_demo.sh BUILD_DIR}/bin
LINES=300      # one every 20 ms: about 6 s of stream
INSTANCES=3
DIR=$(mktemp -d "${TMPDIR:-/tmp}/lifeline-cluster-demo.XXXXXX")
CERTS=$DIR/certs
REDIS_PID=""
CLIENT_PID=""
GEN_PID=""
PIDS=()  # per instance
PORTS=() # per instance
T0=$(date +%s.%N)

say() { awk -v t0="$T0" -v now="$(date +%s.%N)" -v m="$*" 'BEGIN { printf "cluster-demo: [%5.2fs] %s\n", now - t0, m }'; }

cleanup() {
    local pid
    for pid in "$GEN_PID" "$CLIENT_PID" "${PIDS[@]}" "$REDIS_PID"; do
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    wait 2>/dev/null || true
    if [[ ${KEEP_DIR:-0} -eq 0 ]]; then rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=tests/tools/procs.sh
source "$(dirname "${BASH_SOURCE[0]}")/procs.sh"

start_redis() {
    redis_start "$DIR" || return 1
    say "redis-server up on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID, no persistence)"
}

# start_instance I: start instance I on its port (127.0.0.1:0 the first time) and wait for
# its "listening on" line. A port just freed may be refused for a moment: tried again.
start_instance() {
    local i=$1
    server_start "$DIR/server-$i.log" "$BIN/lifeline-server" --dev-certs "$CERTS" \
        --listen "127.0.0.1:${PORTS[i]:-0}" --store "$REDIS_URL" --store-sync always || {
        say "instance $i did not start"
        return 1
    }
    PIDS[i]=$SERVER_PID
    PORTS[i]=${SERVER_ADDR##*:}
    say "instance $i up on 127.0.0.1:${PORTS[i]} (pid ${PIDS[i]})"
}

stop_instance() {
    local i=$1 sig=$2
    kill "-$sig" "${PIDS[i]}" 2>/dev/null || true
    wait "${PIDS[i]}" 2>/dev/null || true
    PIDS[i]=""
}

# The instance the client has its connection to (an established TCP connection to its port).
client_instance() {
    local i
    for ((i = 0; i < INSTANCES; i++)); do
        if ss -Htn state established "( sport = :${PORTS[i]} )" 2>/dev/null | grep -q .; then
            echo "$i"
            return 0
        fi
    done
    echo 0
}

generator() {
    local i
    for ((i = 1; i <= LINES; i++)); do
        printf 'line %05d\n' "$i"
        sleep 0.02
    done
}

# verdict OUT ERR RC: the counts; non-zero if anything was lost, duplicated or reordered.
verdict() {
    local out=$1 err=$2 rc=$3 ok=0 reconnects resumed lost_sessions
    awk -v n="$LINES" '
        /^line [0-9]+$/ { v = $2 + 0; got++; if (seen[v]++) dups++; if (v < last) disorder++; last = v; next }
        { bad++ }
        END {
            for (i = 1; i <= n; i++) if (!seen[i]) lost++
            printf "cluster-demo: sent %d, received %d, lost %d, duplicated %d, out of order %d, garbled %d\n",
                   n, got, lost, dups, disorder, bad
            exit (lost || dups || disorder || bad) ? 1 : 0
        }' "$out" || ok=1
    reconnects=$(grep -o '"reconnects":[0-9]*' "$err" | tail -n 1 | cut -d: -f2 || true)
    resumed=$(grep -o '"handshakes_resumed":[0-9]*' "$err" | tail -n 1 | cut -d: -f2 || true)
    lost_sessions=$(grep -o '"sessions_lost":[0-9]*' "$err" | tail -n 1 | cut -d: -f2 || true)
    printf 'cluster-demo: reconnects %s (TLS handshakes resumed %s), sessions lost %s; client exit status %s\n' \
        "${reconnects:-unknown}" "${resumed:-unknown}" "${lost_sessions:-unknown}" "$rc"
    [[ $rc -eq 0 && ${lost_sessions:-1} -eq 0 ]] || ok=1
    if [[ ${reconnects:-0} -lt $((INSTANCES + 1)) ]]; then
        printf 'cluster-demo: the client did not move at every fault, so the demo proved nothing\n'
        ok=1
    fi
    return "$ok"
}

main() {
    mkdir -p "$CERTS"
    start_redis
    local i eps=""
    for ((i = 0; i < INSTANCES; i++)); do
        start_instance "$i"
        eps+="${eps:+,}127.0.0.1:${PORTS[i]}"
    done

    local fifo=$DIR/stdin.fifo out=$DIR/client.out err=$DIR/client.err
    mkfifo "$fifo"
    generator >"$fifo" &
    GEN_PID=$!
    LIFELINE_CAT_VERBOSE=1 "$BIN/lifeline-cat" --connect "$eps" --keep-endpoint-order \
        --ca "$CERTS/ca.pem" --stats --expect "$LINES" --reconnect-min-ms 20 --reconnect-max-ms 200 \
        --timeout-ms 60000 <"$fifo" >"$out" 2>"$err" &
    CLIENT_PID=$!
    say "client streaming $LINES lines to $eps (pid $CLIENT_PID)"

    sleep 1
    for ((i = 0; i < INSTANCES; i++)); do
        say "rolling restart: SIGTERM instance $i after $(wc -l <"$out") lines echoed"
        stop_instance "$i" TERM
        start_instance "$i"
        sleep 0.8
    done
    i=$(client_instance)
    say "kill -9 of instance $i (the client's) after $(wc -l <"$out") lines echoed"
    stop_instance "$i" KILL
    sleep 0.5
    start_instance "$i"

    local rc=0
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=""
    wait "$GEN_PID" 2>/dev/null || true
    GEN_PID=""
    say "client done"
    grep -i 'connected\|disconnected\|going' "$err" | sed 's/^/    client| /' || true
    if verdict "$out" "$err" "$rc"; then
        say "PASS"
    else
        KEEP_DIR=1
        say "FAIL (outputs kept in $DIR)"
        return 1
    fi
}

main
