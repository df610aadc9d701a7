#!/usr/bin/env bash
# run_collector_test.sh: the samples/README.md collector story, end to end on loopback.
#
#   run_collector_test.sh --collector FILE --publisher FILE --query FILE
#
#  1. start telemetry_collector on 127.0.0.1:0 with throwaway certificates; read its port
#     from its "listening on HOST:PORT" line;
#  2. run telemetry_publisher --count 50 against it, one reading every 40 ms;
#  3. once the collector holds a reading with seq >= 10 (asked with telemetry_query), stop it
#     with SIGTERM and start it again on the same port: it has lost its table and sessions;
#  4. the publisher must still end with every reading acknowledged, after a lost session;
#  5. telemetry_query must report the device's latest reading, seq=50;
#  6. the same 50 readings sent again must all be dropped as duplicates (seq not above 50);
#  7. stop the collector; its summary line must say so.
# Only the processes started here are stopped, on every exit path; the temp dir is removed.
set -euo pipefail
# shellcheck source=samples/listening.sh
source "$(dirname "${BASH_SOURCE[0]}")/../listening.sh"

die() {
    printf 'run_collector_test.sh: FAILED: %s\n' "$*" >&2
    show_logs >&2
    exit 1
}

WAIT_S=10       # for the collector to listen or stop; generous for sanitizer builds
RUN_TIMEOUT_S=90
DEVICE=sensor-7

collector= publisher= query=
while [[ $# -gt 0 ]]; do
    case $1 in
    --collector) collector=$2; shift 2 ;;
    --publisher) publisher=$2; shift 2 ;;
    --query) query=$2; shift 2 ;;
    *) die "unknown argument '$1'" ;;
    esac
done
[[ -n $collector && -n $publisher && -n $query ]] ||
    die "usage: --collector FILE --publisher FILE --query FILE"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lifeline-collector.XXXXXX")
collector_pid= publisher_pid= port=0 run=0

show_logs() {
    local f
    for f in "$tmp"/*.out "$tmp"/*.err; do
        [[ -s $f ]] && printf -- '--- %s\n%s\n' "$(basename "$f")" "$(cat "$f")"
    done
    return 0
}
cleanup() {
    local pid
    for pid in $collector_pid $publisher_pid; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_collector PORT: start it and wait for its "listening on" line; sets collector_pid
# and port.
start_collector() {
    run=$((run + 1))
    start_listening collector_pid "$tmp/collector$run.out" "$tmp/collector$run.err" "$WAIT_S" \
        "$collector" --listen "127.0.0.1:$1" --dev-certs "$tmp/certs" && return 0
    die "telemetry_collector did not start on 127.0.0.1:$1"
}

# stop_collector: SIGTERM, and it must exit 0 within WAIT_S.
stop_collector() {
    local deadline=$((SECONDS + WAIT_S)) status=0
    kill -TERM "$collector_pid" 2>/dev/null || true
    while kill -0 "$collector_pid" 2>/dev/null && ((SECONDS <= deadline)); do
        sleep 0.05
    done
    if kill -0 "$collector_pid" 2>/dev/null; then
        kill -KILL "$collector_pid" 2>/dev/null || true
        wait "$collector_pid" 2>/dev/null || true
        collector_pid=
        die "telemetry_collector did not stop within ${WAIT_S}s of SIGTERM"
    fi
    wait "$collector_pid" || status=$?
    collector_pid=
    [[ $status -eq 0 ]] || die "telemetry_collector exited with status $status on SIGTERM"
}

# latest_seq: the seq of DEVICE's latest reading in the collector, or nothing.
latest_seq() {
    "$query" --connect "127.0.0.1:$port" --ca "$tmp/certs/ca.pem" --device "$DEVICE" \
        --timeout-ms 5000 2>/dev/null | sed -n 's/^device=.* seq=\([0-9]*\) .*/\1/p' || true
}

# expect FILE REGEX WHAT: a line of FILE must match the extended regex.
expect() {
    grep -Eq -- "$2" "$1" || die "$3: no line of $(basename "$1") matches: $2"
}

start_collector 0
printf 'run_collector_test.sh: collector listening on 127.0.0.1:%s\n' "$port"
timeout "$RUN_TIMEOUT_S" "$publisher" --connect "127.0.0.1:$port" --ca "$tmp/certs/ca.pem" \
    --device "$DEVICE" --count 50 --interval-ms 40 >"$tmp/publisher.out" 2>"$tmp/publisher.err" &
publisher_pid=$!

deadline=$((SECONDS + WAIT_S))
until seq=$(latest_seq) && [[ -n $seq ]] && ((seq >= 10)); do
    ((SECONDS <= deadline)) || die "the collector never held a reading with seq >= 10"
    sleep 0.05
done
stop_collector
printf 'run_collector_test.sh: collector stopped at seq=%s; restarting on port %s\n' "$seq" "$port"
expect "$tmp/collector1.out" '^telemetry_collector: devices=1 readings_stored=' "first collector"
start_collector "$port"

status=0
wait "$publisher_pid" || status=$?
publisher_pid=
[[ $status -eq 0 ]] || die "telemetry_publisher exited with status $status"
expect "$tmp/publisher.out" "device=$DEVICE sent=50 acknowledged=50 .* sessions_lost=[1-9]" \
    "publisher"

"$query" --connect "127.0.0.1:$port" --ca "$tmp/certs/ca.pem" --device "$DEVICE" \
    --timeout-ms 10000 >"$tmp/query.out" 2>"$tmp/query.err" || die "telemetry_query failed"
expect "$tmp/query.out" "^device=$DEVICE seq=50 " "query after the restart"

timeout "$RUN_TIMEOUT_S" "$publisher" --connect "127.0.0.1:$port" --ca "$tmp/certs/ca.pem" \
    --device "$DEVICE" --count 50 --interval-ms 0 >"$tmp/replay.out" 2>"$tmp/replay.err" ||
    die "the replaying telemetry_publisher failed"
[[ $(latest_seq) == 50 ]] || die "a replayed reading replaced seq 50"

stop_collector
expect "$tmp/collector2.out" \
    '^telemetry_collector: devices=1 readings_stored=[1-9][0-9]* duplicates_dropped=50 queries_answered=2$' \
    "restarted collector"
show_logs
printf 'run_collector_test.sh: passed\n'
