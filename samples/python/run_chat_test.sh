#!/usr/bin/env bash
# run_chat_test.sh: run samples/python/chat.py non-interactively against a real
# lifeline-server on loopback, through a server restart, and check what came back.
#
#   run_chat_test.sh --bin DIR [--python PATH] [--lines N] [--interval-ms N]
#                    [--restart-after-ms N]
#
# Starts DIR/lifeline-server --listen 127.0.0.1:0 --dev-certs <temp dir> (echo mode), reads
# the port from its "listening on HOST:PORT" line, and, once chat.py has connected, feeds it
# N numbered lines ("line 001", ...; default 100), one every --interval-ms (default 20).
# --restart-after-ms (default 800) after the first line came back, the server is stopped
# with SIGTERM and started again on the same port. Passes if chat.py exits 0, every line
# came back at least once and in order (a line may come again right after the restart,
# never out of order otherwise), chat.py reconnected at least once, and it saw no repeats
# unless the server lost its session.
#
# The library comes from LIFELINE_LIBRARY (ctest sets it), else the binding's own search.
# Only the processes this script started are stopped, and its temp dir is removed, on
# every exit path.
set -euo pipefail
# shellcheck source=samples/listening.sh
source "$(dirname "${BASH_SOURCE[0]}")/../listening.sh"

die() { printf 'run_chat_test.sh: %s\n' "$*" >&2; exit 1; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WAIT_S=10          # for the server to listen; generous for slow machines
CHAT_TIMEOUT_S=60

bin='' python=/usr/bin/python3 lines=100 interval_ms=20 restart_after_ms=800
while [[ $# -gt 0 ]]; do
    case $1 in
    --bin) bin=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --lines) lines=$2; shift 2 ;;
    --interval-ms) interval_ms=$2; shift 2 ;;
    --restart-after-ms) restart_after_ms=$2; shift 2 ;;
    *) die "unknown argument '$1'" ;;
    esac
done
[[ -n $bin ]] || die "usage: --bin DIR [--python PATH] [--lines N] [--interval-ms N] [--restart-after-ms N]"
[[ -x $bin/lifeline-server ]] || die "no lifeline-server in $bin"
[[ -x $python ]] || die "no Python at $python"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lifeline-chat.XXXXXX")
server_pid='' feeder_pid='' chat_pid=''

stop_server() {
    if [[ -n $server_pid ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
cleanup() {
    local pid
    for pid in $feeder_pid $chat_pid; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    stop_server
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server PORT: start it and wait for its "listening on" line; sets server_pid and port.
start_server() {
    start_listening server_pid "$tmp/server.out" "$tmp/server.err" "$WAIT_S" \
        "$bin/lifeline-server" --listen "127.0.0.1:$1" --dev-certs "$tmp/certs" && return 0
    cat "$tmp/server.err" >&2 || true
    die "lifeline-server did not start on 127.0.0.1:$1"
}

# feed: once chat.py has connected, the numbered lines, one every interval_ms.
feed() {
    local i pause deadline=$((SECONDS + WAIT_S))
    pause=$(printf '%d.%03d' $((interval_ms / 1000)) $((interval_ms % 1000)))
    until grep -q '^chat: connected' "$tmp/chat.err" 2>/dev/null; do
        ((SECONDS <= deadline)) || break   # chat.py fails on its own; its output says why
        sleep 0.02
    done
    for ((i = 1; i <= lines; i++)); do
        printf 'line %03d\n' "$i"
        sleep "$pause"
    done
}

port=0
start_server 0
mkfifo "$tmp/stdin"
feed >"$tmp/stdin" &
feeder_pid=$!
"$python" "$HERE/chat.py" --connect "127.0.0.1:$port" --ca "$tmp/certs/ca.pem" --name tester \
    --count "$lines" --expect "$lines" --timeout "$CHAT_TIMEOUT_S" \
    <"$tmp/stdin" >"$tmp/chat.out" 2>"$tmp/chat.err" &
chat_pid=$!

# Restart mid-run: restart_after_ms after the first line came back (so that a slow start,
# e.g. on a loaded machine, cannot put the restart before chat.py has even connected).
deadline=$((SECONDS + WAIT_S))
until [[ -s $tmp/chat.out ]]; do
    kill -0 "$chat_pid" 2>/dev/null || break
    ((SECONDS <= deadline)) || die "no line came back within ${WAIT_S} s"
    sleep 0.02
done
sleep "$(printf '%d.%03d' $((restart_after_ms / 1000)) $((restart_after_ms % 1000)))"
printf 'run_chat_test.sh: %s lines back; stopping the server (SIGTERM)\n' "$(wc -l <"$tmp/chat.out")"
stop_server
printf 'run_chat_test.sh: restarting it on port %s\n' "$port"
start_server "$port"

status=0
wait "$chat_pid" || status=$?
chat_pid=
wait "$feeder_pid" 2>/dev/null || true
feeder_pid=

printf -- '--- chat.py stdout (%s lines)\n' "$(wc -l <"$tmp/chat.out")"
cat "$tmp/chat.out"
printf -- '--- chat.py stderr\n'
cat "$tmp/chat.err"
[[ $status -eq 0 ]] || die "chat.py exited with status $status"

# Every line at least once; in order, except that lines may come again (a burst of
# re-delivery after the restart) before the sequence moves on.
awk -v n="$lines" '
    /^tester: line [0-9]+$/ {
        v = $3 + 0
        if (v < 1 || v > n) { bad++; next }
        if (v <= max) { if (seen[v]) dups++; else disorder++ } else max = v
        seen[v]++
        next
    }
    { bad++ }
    END {
        for (i = 1; i <= n; i++) if (!seen[i]) { missing++; if (!first) first = i }
        printf "run_chat_test.sh: %d distinct of %d, %d missing%s, %d repeated, %d out of order, %d garbled\n",
               n - missing, n, missing, (missing ? " (first: " first ")" : ""), dups, disorder, bad
        exit (missing || disorder || bad) ? 1 : 0
    }' "$tmp/chat.out" || die "lines missing, out of order or garbled"

summary=$(grep -E '^chat: sent=' "$tmp/chat.err" | tail -n 1) || die "no summary line from chat.py"
reconnects=$(sed -E 's/.* reconnects=([0-9]+).*/\1/' <<<"$summary")
repeats=$(sed -E 's/.* repeats=([0-9]+).*/\1/' <<<"$summary")
sessions_lost=$(sed -E 's/.* sessions_lost=([0-9]+).*/\1/' <<<"$summary")
[[ $summary == "chat: sent=$lines received=$lines "* ]] || die "expected sent=$lines received=$lines: $summary"
((reconnects >= 1)) || die "chat.py never reconnected, so the restart proved nothing: $summary"
((repeats == 0 || sessions_lost >= 1)) || die "repeats without a lost session: $summary"
printf 'run_chat_test.sh: passed (%s)\n' "${summary#chat: }"
