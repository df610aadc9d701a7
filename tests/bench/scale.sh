#!/usr/bin/env bash
# Scale run: start build/bin/lifeline-server on 127.0.0.1 (port picked by the kernel) with
# throwaway dev certificates, open idle TLS clients against it with build/bin/lifeline-scale,
# print the result block, and stop the server.
#
#   tests/bench/scale.sh [--build DIR] [lifeline-scale options...]
#   tests/bench/scale.sh --build build-release --clients 10000 --hold-s 30
#
# Options after --build go to lifeline-scale (--clients, --hold-s, --inflight, ...).
# Exit status is lifeline-scale's: 0 when every client connected and stayed connected.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=build
if [[ ${1:-} == --build ]]; then
    build=$2
    shift 2
fi
[[ $build == /* ]] || build=$root/$build
server_bin=$build/bin/lifeline-server
scale_bin=$build/bin/lifeline-scale
for b in "$server_bin" "$scale_bin"; do
    [[ -x $b ]] || { echo "scale.sh: $b missing: cmake --build $build --target lifeline-scale lifeline-server" >&2; exit 1; }
done

# Both processes need one descriptor per client (plus a few): clients + 200, raising the hard
# limit too when allowed (root with CAP_SYS_RESOURCE); a clear error when it cannot be had.
clients=10000
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    [[ ${args[i]} == --clients ]] && clients=${args[i + 1]:-$clients}
done
want=$((clients + 200))
hard=$(ulimit -Hn)
if [[ $hard != unlimited && $hard -lt $want ]]; then
    ulimit -Hn "$want" 2>/dev/null || {
        echo "scale.sh: $clients clients need $want open files per process, but the hard limit is $hard and" \
            "cannot be raised here (ulimit -Hn; as root it needs CAP_SYS_RESOURCE, else limits.conf)" >&2
        exit 1
    }
fi
ulimit -n "$want"
echo "scale.sh: open files limit $(ulimit -n); ephemeral ports $(tr '\t' - </proc/sys/net/ipv4/ip_local_port_range)" >&2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lifeline-scale.XXXXXX")
server_pid=
# shellcheck disable=SC2317  # called through the trap
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --sink: an idle run never sends data, so echo and sink behave the same.
# No admission limits: the generator ramps at its own --inflight pace from one address per
# 20000 clients.
"$server_bin" --listen 127.0.0.1:0 --dev-certs "$tmp/certs" --sink --connect-rate off --max-connections off \
    --max-handshakes off >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!

addr=
for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on \(.*\)$/\1/p' "$tmp/server.out" | head -n1)
    [[ -n $addr ]] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $addr ]]; then
    echo "scale.sh: lifeline-server did not print 'listening on HOST:PORT'; its stderr:" >&2
    cat "$tmp/server.err" >&2
    exit 1
fi
echo "scale.sh: lifeline-server pid $server_pid listening on $addr" >&2

rc=0
"$scale_bin" --connect "$addr" --ca "$tmp/certs/ca.pem" --server-pid "$server_pid" "$@" || rc=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "scale.sh: lifeline-server died during the run; its stderr:" >&2
    tail -n 20 "$tmp/server.err" >&2
    rc=1
fi
exit $rc
