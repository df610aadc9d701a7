#!/usr/bin/env bash
# run_sample_test.sh: run one sample against a real lifeline-server on loopback and check it.
#
#   run_sample_test.sh --bin DIR --expect REGEX [--server-arg ARG]...
#                      [--restart-after-ms N] -- SAMPLE [ARG]...
#
# Starts DIR/lifeline-server --listen 127.0.0.1:0 --dev-certs <temp dir> [ARG...], reads the
# port from its "listening on HOST:PORT" line, and runs SAMPLE with {ADDR} and {CA} in its
# arguments replaced by 127.0.0.1:PORT and the development CA. With --restart-after-ms, the
# server is stopped (SIGTERM) that long after the sample starts and started again on the same
# port. Passes if the sample exits 0 and a line of its stdout matches the extended regex.
# The server is stopped and the temp dir removed on every exit path.
set -euo pipefail
# shellcheck source=samples/listening.sh
source "$(dirname "${BASH_SOURCE[0]}")/listening.sh"

die() { printf 'run_sample_test.sh: %s\n' "$*" >&2; exit 1; }

WAIT_S=10          # for the server to listen; generous for sanitizer builds
SAMPLE_TIMEOUT_S=90

bin= expect= restart_after_ms=
server_args=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --bin) bin=$2; shift 2 ;;
    --expect) expect=$2; shift 2 ;;
    --server-arg) server_args+=("$2"); shift 2 ;;
    --restart-after-ms) restart_after_ms=$2; shift 2 ;;
    --) shift; break ;;
    *) die "unknown argument '$1'" ;;
    esac
done
[[ -n $bin && -n $expect && $# -gt 0 ]] || die "usage: --bin DIR --expect REGEX [...] -- SAMPLE [ARG]..."

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lifeline-sample.XXXXXX")
server_pid=

stop_server() {
    if [[ -n $server_pid ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
cleanup() {
    stop_server
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server PORT: start it and wait for its "listening on" line; sets server_pid and port.
start_server() {
    start_listening server_pid "$tmp/server.out" "$tmp/server.err" "$WAIT_S" \
        "$bin/lifeline-server" --listen "127.0.0.1:$1" --dev-certs "$tmp/certs" \
        ${server_args[@]+"${server_args[@]}"} && return 0
    cat "$tmp/server.err" >&2 || true
    die "lifeline-server did not start on 127.0.0.1:$1"
}

port=0
start_server 0
args=()
for a in "$@"; do
    a=${a//\{ADDR\}/127.0.0.1:$port}
    args+=("${a//\{CA\}/$tmp/certs/ca.pem}")
done

timeout "$SAMPLE_TIMEOUT_S" "${args[@]}" >"$tmp/sample.out" 2>"$tmp/sample.err" &
sample_pid=$!
if [[ -n $restart_after_ms ]]; then
    sleep "$(printf '%d.%03d' $((restart_after_ms / 1000)) $((restart_after_ms % 1000)))"
    stop_server
    printf 'run_sample_test.sh: server stopped; restarting on port %s\n' "$port"
    start_server "$port"
fi
status=0
wait "$sample_pid" || status=$?

printf -- '--- %s stdout\n' "$(basename "${args[0]}")"
cat "$tmp/sample.out"
printf -- '--- stderr\n'
cat "$tmp/sample.err"
[[ $status -eq 0 ]] || die "sample exited with status $status"
grep -Eq -- "$expect" "$tmp/sample.out" || die "no line of its output matches: $expect"
printf 'run_sample_test.sh: passed\n'
