#!/usr/bin/env bash
# scale_storm_test.sh BUILD_DIR: the handshake storm in small (ctest bench_scale_storm).
# 100 clients through tests/bench/scale.sh --storm, twice: with the store every client must
# come back on a resumed TLS handshake and its resumed Lifeline session; with --no-store on
# a full handshake and a new session. Fails on a missing line or a non-zero exit.
set -euo pipefail

build=${1:?usage: scale_storm_test.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
n=100
fail=0

# expect OUT PATTERN: OUT has a line matching PATTERN, else say so.
expect() {
    if ! grep -Eq "$2" "$1"; then
        echo "scale_storm_test: no line matching '$2' in the result:" >&2
        fail=1
    fi
}

# storm OUT ARGS...: one run, its result block in OUT; its exit status must be 0.
storm() {
    local out=$1
    shift
    if ! "$here/scale.sh" --build "$build" --storm "$@" --clients "$n" --inflight 50 --hold-s 1 \
        --storm-timeout-s 60 >"$out"; then
        echo "scale_storm_test: scale.sh --storm $* failed; its result:" >&2
        cat "$out" >&2
        fail=1
    fi
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT

storm "$out"
expect "$out" "^storm back \(READY again\) +$n of $n;"
expect "$out" "^storm TLS handshakes +$n resumed \(SSL_session_reused\), 0 full$"
expect "$out" "^storm Lifeline sessions +$n resumed \(Welcome.resumed\), 0 lost"
expect "$out" "^storm CPU per handshake +[0-9]+ us"
cat "$out"

storm "$out" --no-store
expect "$out" "^storm back \(READY again\) +$n of $n;"
expect "$out" "^storm TLS handshakes +0 resumed \(SSL_session_reused\), $n full$"
expect "$out" "^storm Lifeline sessions +0 resumed \(Welcome.resumed\), $n lost"
cat "$out"
exit $fail
