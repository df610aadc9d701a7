#!/usr/bin/env bash
# Scale run: start build/bin/lifeline-server on 127.0.0.1 (port picked by the kernel) with
# throwaway dev certificates, open idle TLS clients against it with build/bin/lifeline-scale,
# print the result block, and stop the server.
#
#   tests/bench/scale.sh [--build DIR] [--storm [--no-store]] [lifeline-scale options...]
#   tests/bench/scale.sh --build build-release --clients 10000 --hold-s 30
#   tests/bench/scale.sh --build build-release --storm --clients 10000 --hold-s 5
#
# --storm: the handshake storm. A private redis-server (tests/tools/procs.sh) and the server
# on it (--store redis://..., shared ticket keys, sessions handed over at SIGTERM); after the
# hold lifeline-scale SIGTERMs it, this script starts the new one on the same port as soon as
# the old one has exited and names its pid in a file lifeline-scale reads (--storm FILE), and
# every client reconnects at once. --no-store: the same without the store (no shared ticket
# keys: full handshakes, sessions lost), for contrast.
#
# --io-threads N: the server's (lifeline-server --io-threads).
# Other options go to lifeline-scale (--clients, --hold-s, --inflight, ...).
# Exit status is lifeline-scale's: 0 when every client connected and stayed connected (and,
# with --storm, all came back).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=build
if [[ ${1:-} == --build ]]; then
    build=$2
    shift 2
fi
# --storm and --no-store are this script's, wherever they stand; the rest is lifeline-scale's.
storm=0
store=1
io_args=()
rest=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --storm) storm=1 ;;
    --no-store) store=0 ;;
    --io-threads)
        io_args=(--io-threads "${2:?--io-threads wants a number}")
        shift
        ;;
    *) rest+=("$1") ;;
    esac
    shift
done
set -- "${rest[@]}"
if [[ $storm -eq 0 && $store -eq 0 ]]; then
    echo "scale.sh: --no-store goes with --storm" >&2
    exit 64
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
# shellcheck source=tests/tools/procs.sh
source "$root/tests/tools/procs.sh"
server_pid=
REDIS_PID=
# shellcheck disable=SC2317  # called through the trap
stop_pid() {
    local pid=$1
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
# shellcheck disable=SC2317  # called through the trap
cleanup() {
    stop_pid "$server_pid"
    stop_pid "$REDIS_PID"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

store_args=()
if [[ $storm -eq 1 && $store -eq 1 ]]; then
    redis_start "$tmp" || exit 1
    store_args=(--store "$REDIS_URL")
    echo "scale.sh: redis-server pid $REDIS_PID on 127.0.0.1:$REDIS_PORT (no persistence)" >&2
fi

# start_server N LISTEN: lifeline-server number N (log $tmp/server-N.log) on LISTEN.
# --sink: an idle run never sends data, so echo and sink behave the same.
# No admission limits: the generator ramps at its own --inflight pace from one address per
# 20000 clients (and the storm reconnects all at once).
start_server() {
    server_start "$tmp/server-$1.log" "$server_bin" --listen "$2" --dev-certs "$tmp/certs" --sink \
        --connect-rate off --max-connections off --max-handshakes off "${store_args[@]}" "${io_args[@]}" || exit 1
    server_pid=$SERVER_PID
    echo "scale.sh: lifeline-server pid $server_pid listening on $SERVER_ADDR" \
        "(${store_args[*]:-no store})" >&2
}

start_server 1 127.0.0.1:0
addr=$SERVER_ADDR
scale_args=(--connect "$addr" --ca "$tmp/certs/ca.pem" --server-pid "$server_pid")
rc=0
if [[ $storm -eq 0 ]]; then
    "$scale_bin" "${scale_args[@]}" "$@" || rc=$?
else
    "$scale_bin" "${scale_args[@]}" --storm "$tmp/new.pid" "$@" &
    scale_pid=$!
    # Whichever ends first: the old server (lifeline-scale's SIGTERM after the hold), or
    # lifeline-scale (a failed run that never got to the storm).
    ended=
    first_rc=0
    wait -n -p ended "$server_pid" "$scale_pid" || first_rc=$?
    if [[ $ended == "$scale_pid" ]]; then
        rc=$first_rc
    else
        old_exit=$(date +%s.%N)
        echo "scale.sh: old server pid $server_pid exited (status $first_rc); restarting on $addr" >&2
        if [[ $first_rc -ne 0 ]]; then
            echo "scale.sh: the old server's stop failed; its output:" >&2
            tail -n 20 "$tmp/server-1.log" >&2
            rc=1
        fi
        server_pid=
        start_server 2 "$addr"
        echo "$server_pid $old_exit $(date +%s.%N)" >"$tmp/new.pid.tmp"
        mv "$tmp/new.pid.tmp" "$tmp/new.pid"
        scale_rc=0
        wait "$scale_pid" || scale_rc=$?
        [[ $scale_rc -eq 0 ]] || rc=$scale_rc
    fi
fi

if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "scale.sh: lifeline-server died during the run; its output:" >&2
    tail -n 20 "$tmp"/server-*.log >&2
    rc=1
fi
exit $rc
