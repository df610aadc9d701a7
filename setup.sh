#!/usr/bin/env bash
# setup.sh: install dependencies, build, test and demonstrate Lifeline on Debian 12.
#
#   bash setup.sh deps                      install the Debian packages (apt-get; root or sudo)
#   bash setup.sh build [DIR] [CMAKE ARGS]  configure and build into DIR (default: build)
#   bash setup.sh test                      deps, the format check, then plain, ASan+UBSan and
#                                           TSan builds, each with ctest, the ABI check on the
#                                           plain build, then each libFuzzer target for a
#                                           bounded time; non-zero exit if any fails
#   bash setup.sh abi [DIR]                 the ABI check alone on DIR (default build, built
#                                           first): the library against every baseline in
#                                           tests/abi (abi-dumper + abi-compliance-checker)
#   bash setup.sh abi-baseline [DIR]        at a release: write the library's ABI dump to
#                                           tests/abi/lifeline-<version>.dump (commit it)
#   bash setup.sh wheel [DIR]               build DIR (default build), then a Python wheel with
#                                           liblifeline.so inside: DIR/dist/lifeline-*.whl
#                                           (pip install it anywhere; no C build there)
#   bash setup.sh format [--check]          clang-format every tracked C file (--check: only
#                                           report, non-zero if one is not formatted)
#   bash setup.sh demo                      deps, build, then a live reconnect demo on loopback
#   bash setup.sh cluster-demo              deps, build, then Redis, 3 servers and a client through
#                                           a rolling restart and a kill -9 (tests/tools/cluster_demo.sh)
#   bash setup.sh bench [ARGS]              deps, Release build in build-release, then the
#                                           benchmark table (lifeline-bench ARGS, e.g. --quick);
#                                           with --peers also PEER_DEPS (nats-server, mosquitto
#                                           and their C libraries) and the NATS / MQTT rows
#   bash setup.sh scale [ARGS]              deps, Release build, then the scale run
#                                           (tests/bench/scale.sh; default --clients 10000
#                                           --hold-s 30); with --storm [--no-store] the
#                                           handshake storm after a server restart
#
# Environment:
#   LIFELINE_CTEST_JOBS   parallel ctest jobs (default 2; the tests use ephemeral ports)
#   LIFELINE_BUILD_JOBS   parallel build jobs (default: nproc)
#   LIFELINE_FUZZ_SECONDS how long each libFuzzer target runs in `test` (default 30)
#   LIFELINE_DEMO_ADDR    address the demo server listens on (default 127.0.0.1:7443)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

DEPS=(build-essential cmake pkg-config libssl-dev libprotobuf-c-dev protobuf-c-compiler
      libcmocka-dev python3 python3-protobuf python3-pytest protobuf-compiler clang libclang-rt-14-dev
      clang-format libc-ares-dev abi-dumper abi-compliance-checker universal-ctags elfutils
      libhiredis-dev redis-server libmicrohttpd-dev libsystemd-dev python3-prometheus-client python3-venv
      python3-setuptools python3-wheel python3-pip python3-mypy)
# Only for `bash setup.sh bench --peers` (CI does not need them): the NATS and MQTT servers
# and client libraries the peer rows of lifeline-bench measure. The bench starts private
# instances of its own; the system services these packages install are stopped and disabled.
PEER_DEPS=(nats-server libnats-dev mosquitto libmosquitto-dev)
PEER_SERVICES=(nats-server mosquitto)
CTEST_JOBS=${LIFELINE_CTEST_JOBS:-2}
FUZZ_SECONDS=${LIFELINE_FUZZ_SECONDS:-30}
BUILD_JOBS=${LIFELINE_BUILD_JOBS:-$(nproc)}

log() { printf 'setup.sh: %s\n' "$*"; }
die() { printf 'setup.sh: error: %s\n' "$*" >&2; exit 1; }

banner() {
    printf '\n==============================================================================\n'
    printf '== %s\n' "$*"
    printf '==============================================================================\n'
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

# ---------------------------------------------------------------------------- deps

# as_root CMD...: run CMD as root: directly when we are root, else through sudo.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root or sudo to run: $*"
    fi
}

# missing_deps [PKG...]: those of PKG (default: DEPS) that are not installed.
missing_deps() {
    local pkg status
    if [[ $# -eq 0 ]]; then set -- "${DEPS[@]}"; fi
    for pkg in "$@"; do
        # shellcheck disable=SC2016 # ${Status} is dpkg-query's field, not ours
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        if [[ $status != "install ok installed" ]]; then
            printf '%s\n' "$pkg"
        fi
    done
}

# install_missing LABEL PKG...: apt-get install those of PKG that are not installed yet.
# JUST_INSTALLED: what it installed (empty if nothing was missing).
JUST_INSTALLED=""
install_missing() {
    local label=$1 missing
    shift
    JUST_INSTALLED=""
    missing=$(missing_deps "$@")
    if [[ -z $missing ]]; then
        log "$label: all $# packages already installed"
        return 0
    fi
    log "$label: installing: $(echo "$missing" | tr '\n' ' ')"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    # shellcheck disable=SC2086 # one package name per word
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
    JUST_INSTALLED=$missing
}

# libclang-rt-14-dev (libFuzzer, sanitizer runtimes) is listed by name, not left to Recommends.
cmd_deps() {
    install_missing deps "${DEPS[@]}"
}

# stop_service NAME: stop and disable a system service a package install may have started
# (systemd if it runs, else the init script), so nothing listens on its default port.
stop_service() {
    local svc=$1
    if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
        as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/$svc ]]; then
        as_root /etc/init.d/"$svc" stop >/dev/null 2>&1 || true
        if command -v update-rc.d >/dev/null 2>&1; then
            as_root update-rc.d "$svc" disable >/dev/null 2>&1 || true
        fi
    fi
}

# cmd_peer_deps: PEER_DEPS, for lifeline-bench --peers. The services they install are
# stopped right after a fresh install: the bench never uses them.
cmd_peer_deps() {
    local svc
    install_missing "peer deps" "${PEER_DEPS[@]}"
    if [[ -n $JUST_INSTALLED ]]; then
        for svc in "${PEER_SERVICES[@]}"; do
            stop_service "$svc"
        done
    fi
}

# ---------------------------------------------------------------------------- build

# cmd_build [DIR] [CMAKE ARGS...]: configure (build type defaults in CMakeLists.txt) and build.
cmd_build() {
    local dir=${1:-build}
    if [[ $# -gt 0 ]]; then shift; fi
    # Explicit returns: callers may run this inside `if`, where set -e is off, and a failed
    # configure must not fall through to building a stale tree.
    cmake -S "$ROOT" -B "$dir" "$@" || return 1
    cmake --build "$dir" -j "$BUILD_JOBS" || return 1
}

# ---------------------------------------------------------------------------- format

# cmd_format [--check]: the tree's C files through clang-format 14 (.clang-format at the root).
cmd_format() {
    local -a files
    mapfile -t files < <(git -C "$ROOT" ls-files '*.c' '*.h')
    if [[ ${1:-} == --check ]]; then
        clang-format --dry-run -Werror "${files[@]}"
    else
        clang-format -i "${files[@]}"
    fi
}

# ---------------------------------------------------------------------------- test

# tsan_wrapper DIR: print the command prefix TSan needs on this kernel, if any. With large
# mmap ASLR (vm.mmap_rnd_bits > 28 on newer kernels) TSan binaries die with "FATAL:
# ThreadSanitizer: unexpected memory mapping"; running them with ASLR off avoids it. A
# one-line probe decides, so the wrapper is used only where it is needed.
tsan_wrapper() {
    local dir=$1 probe=$1/tsan-probe out
    printf 'int main(void) { return 0; }\n' |
        "${CC:-cc}" -fsanitize=thread -x c - -o "$probe" || return 0
    if out=$("$probe" 2>&1); then
        return 0
    fi
    if grep -q "unexpected memory mapping" <<<"$out" && command -v setarch >/dev/null 2>&1; then
        printf 'setarch %s -R\n' "$(uname -m)"
    fi
}

# run_suite NAME DIR [CMAKE ARGS...]: build DIR and run its tests. Returns non-zero on any
# failure. Every step is checked explicitly: set -e does not apply inside an `if` condition.
run_suite() {
    local name=$1 dir=$2
    shift 2
    banner "$name: build in $dir ($*)"
    cmd_build "$dir" "$@" || { log "$name: BUILD FAILED"; return 1; }

    local -a wrapper=()
    if [[ " $* " == *" -DLIFELINE_SANITIZE=thread "* ]]; then
        read -r -a wrapper <<<"$(tsan_wrapper "$dir")"
        if [[ ${#wrapper[@]} -gt 0 ]]; then
            log "$name: this kernel needs ASLR off for TSan: running ctest under ${wrapper[*]}"
        fi
    fi

    banner "$name: ctest in $dir (-j $CTEST_JOBS)"
    # --no-tests=error: a run that finds no tests must not look green.
    # The ABI check (label abi) is a step of its own: cmd_abi.
    "${wrapper[@]}" ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$CTEST_JOBS" -LE abi ||
        { log "$name: TESTS FAILED"; return 1; }
}

# ---------------------------------------------------------------------------- abi

# cmd_abi [DIR]: build DIR (default build; it must have debug information, as the default
# RelWithDebInfo does) and run its ABI tests (ctest label abi: tests/abi/check_abi.cmake).
cmd_abi() {
    local dir=${1:-build}
    banner "abi: liblifeline.so in $dir against every baseline in tests/abi"
    cmd_build "$dir" || { log "abi: BUILD FAILED"; return 1; }
    local out=$dir/testtmp/abi-ctest.log rc=0
    mkdir -p "$dir/testtmp"
    ctest --test-dir "$dir" --no-tests=error -L abi -V >"$out" 2>&1 || rc=$?
    grep -E "ABI |compatibility|report:|tests passed" "$out" || true
    if [[ $rc -ne 0 ]]; then
        tail -n 40 "$out"
        log "abi: ABI CHECK FAILED (full log: $out)"
        return 1
    fi
}

# cmd_abi_baseline [DIR]: the ABI dump of DIR's library as tests/abi/lifeline-<version>.dump.
cmd_abi_baseline() {
    local dir=${1:-build} lib version
    cmd_build "$dir" || return 1
    lib=$(readlink -f "$dir/lib/liblifeline.so")
    version=${lib##*.so.}
    abi-dumper "$lib" -o "$ROOT/tests/abi/lifeline-$version.dump" -lver "$version" \
        -public-headers "$ROOT/sdk/include/lifeline" || return 1
    log "abi-baseline: wrote tests/abi/lifeline-$version.dump"
}

# The libFuzzer targets, each with its seed corpus under tests/fuzz/corpus/ (the two frame-level
# targets share theirs).
FUZZ_TARGETS=(fuzz_decoder:frames fuzz_session:frames fuzz_conn:conn)

# run_fuzz DIR: build the libFuzzer targets with clang and run each for FUZZ_SECONDS over a
# scratch directory and its seeds (new inputs must not land in the repository).
run_fuzz() {
    local dir=$1 entry target seeds corpus
    banner "fuzz: build in $dir (clang, -DLIFELINE_FUZZ=ON), ${FUZZ_SECONDS}s per target"
    CC=clang cmake -S "$ROOT" -B "$dir" -DLIFELINE_FUZZ=ON -DLIFELINE_TESTS=OFF >/dev/null &&
        cmake --build "$dir" -j "$BUILD_JOBS" --target "${FUZZ_TARGETS[@]%%:*}" ||
        { log "fuzz: BUILD FAILED"; return 1; }
    for entry in "${FUZZ_TARGETS[@]}"; do
        target=${entry%%:*}
        seeds=$ROOT/tests/fuzz/corpus/${entry#*:}
        corpus=$(mktemp -d)
        banner "fuzz: $target for ${FUZZ_SECONDS}s"
        if ! "$dir/bin/$target" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
            "$corpus" "$seeds" 2>&1 | tail -n 12; then
            rm -rf "$corpus"
            log "fuzz: $target FOUND A FAILURE"
            return 1
        fi
        rm -rf "$corpus"
    done
}

cmd_test() {
    cmd_deps
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

    local -a names=("format" "plain" "abi" "ASan+UBSan" "TSan") results=()
    local failed=0
    banner "format: clang-format --dry-run -Werror on every tracked C file"
    if cmd_format --check; then results+=(PASS); else results+=(FAIL); failed=1; fi
    if run_suite "plain" build; then results+=(PASS); else results+=(FAIL); failed=1; fi
    if cmd_abi build; then results+=(PASS); else results+=(FAIL); failed=1; fi
    if run_suite "ASan+UBSan" build-asan -DLIFELINE_SANITIZE=address; then
        results+=(PASS)
    else
        results+=(FAIL); failed=1
    fi
    if run_suite "TSan" build-tsan -DLIFELINE_SANITIZE=thread; then
        results+=(PASS)
    else
        results+=(FAIL); failed=1
    fi

    names+=("fuzz")
    if run_fuzz build-fuzz; then results+=(PASS); else results+=(FAIL); failed=1; fi

    banner "summary"
    local i
    for i in "${!names[@]}"; do
        printf '  %-12s %s\n' "${names[$i]}" "${results[$i]}"
    done
    if [[ $failed -ne 0 ]]; then
        log "test: FAILED"
        return 1
    fi
    log "test: all suites passed"
}

# ---------------------------------------------------------------------------- demo

DEMO_ADDR=${LIFELINE_DEMO_ADDR:-127.0.0.1:7443}
DEMO_LINES=120        # one line every 50 ms: about 6 s
DEMO_STOP_AT=2        # seconds after the client starts: SIGTERM the server
DEMO_DOWN_FOR=1       # seconds the server stays down
DEMO_DIR=$ROOT/build/demo
DEMO_CERTS=$ROOT/build/demo-certs
SERVER_PID=""
CLIENT_PID=""
GEN_PID=""
DEMO_T0=""

demo_cleanup() {
    local pid
    for pid in "$GEN_PID" "$CLIENT_PID" "$SERVER_PID"; do
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
}

elapsed() { awk -v t0="$DEMO_T0" -v now="$(date +%s.%N)" 'BEGIN { printf "%5.2fs", now - t0 }'; }
say() { printf 'demo: [%s] %s\n' "$(elapsed)" "$*"; }

# follow FILE PID PREFIX: echo FILE live, prefixed, until process PID exits.
follow() {
    tail -n +1 -s 0.1 -f --pid="$2" "$1" 2>/dev/null | sed -u "s/^/$3/" &
}

# start_server N: start the server (Nth run), wait for its "listening on" line.
start_server() {
    local slog=$DEMO_DIR/server-$1.log i
    "$ROOT/build/bin/lifeline-server" --dev-certs "$DEMO_CERTS" --listen "$DEMO_ADDR" \
        >"$slog" 2>&1 &
    SERVER_PID=$!
    follow "$slog" "$SERVER_PID" "    server#$1| "
    for ((i = 0; i < 100; i++)); do
        if grep -q "listening on" "$slog"; then
            say "server #$1 up (pid $SERVER_PID)"
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    say "server #$1 did not start; its log:"
    cat "$slog"
    return 1
}

stop_server() {
    local pid=$SERVER_PID i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "server did not exit on SIGTERM within 5 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    SERVER_PID=""
}

generator() {
    local i
    for ((i = 1; i <= DEMO_LINES; i++)); do
        printf 'line %05d\n' "$i"
        sleep 0.05
    done
}

# verify_output FILE: every line present; increasing except re-delivery; counts duplicates.
# Prints the counts and returns non-zero if any line is missing, garbled or out of order.
verify_output() {
    awk -v n="$DEMO_LINES" '
        /^line [0-9]+$/ {
            v = $2 + 0; total++
            if (v < 1 || v > n) { bad++; next }
            if (v <= max) {
                if (seen[v]) { if (!inburst) { bursts++ }; inburst = 1 }
                else { disorder++ }
            } else { inburst = 0; max = v }
            if (seen[v]++) dups++
            next
        }
        { bad++ }
        END {
            for (i = 1; i <= n; i++) {
                if (!seen[i]) { missing++; if (m < 10) { list = list " " i; m++ } }
            }
            printf "demo: received %d lines for %d sent: %d distinct, %d missing%s,\n",
                   total, n, n - missing, missing, (missing ? " (first:" list ")" : "")
            printf "demo: %d duplicates (%d re-delivery bursts), %d out of order, %d garbled\n",
                   dups, bursts, disorder, bad
            exit (missing || disorder || bad) ? 1 : 0
        }' "$1"
}

demo_verdict() {
    local out=$1 err=$2 client_rc=$3 ok=0 reconnects
    verify_output "$out" || ok=1
    reconnects=$(grep -o '"reconnects":[0-9]*' "$err" | tail -n 1 | cut -d: -f2 || true)
    printf 'demo: client exit status %s; client reconnects (from --stats): %s\n' \
        "$client_rc" "${reconnects:-unknown}"
    [[ $client_rc -eq 0 ]] || ok=1
    if [[ ${reconnects:-0} -lt 1 ]]; then
        printf 'demo: the client never reconnected, so the demo proved nothing\n'
        ok=1
    fi
    printf 'demo: note: the restarted server does not know the old session, so lines the client\n'
    printf 'demo:       had sent but not seen acknowledged are sent again (at least once):\n'
    printf 'demo:       duplicates after the restart are expected; a missing line is not.\n'
    if [[ $ok -eq 0 ]]; then
        banner "demo: PASS"
    else
        banner "demo: FAIL (outputs kept in $DEMO_DIR)"
    fi
    return "$ok"
}

cmd_demo() {
    cmd_deps
    cmd_build build
    rm -rf "$DEMO_DIR"
    mkdir -p "$DEMO_DIR" "$DEMO_CERTS"
    trap demo_cleanup EXIT
    trap 'exit 130' INT TERM
    DEMO_T0=$(date +%s.%N)

    banner "demo: echo server on $DEMO_ADDR; client sends $DEMO_LINES lines, one every 50 ms"
    start_server 1

    local fifo=$DEMO_DIR/stdin.fifo out=$DEMO_DIR/client.out err=$DEMO_DIR/client.err
    mkfifo "$fifo"
    generator >"$fifo" &
    GEN_PID=$!
    LIFELINE_CAT_VERBOSE=1 "$ROOT/build/bin/lifeline-cat" --connect "$DEMO_ADDR" \
        --ca "$DEMO_CERTS/ca.pem" --retry-first-connect --stats \
        --heartbeat-ms 500 --reconnect-min-ms 50 --reconnect-max-ms 500 --timeout-ms 30000 \
        <"$fifo" >"$out" 2>"$err" &
    CLIENT_PID=$!
    say "client started (pid $CLIENT_PID)"
    follow "$err" "$CLIENT_PID" "    client| "

    sleep "$DEMO_STOP_AT"
    say "stopping the server (SIGTERM) after $(wc -l <"$out") lines echoed"
    stop_server
    sleep "$DEMO_DOWN_FOR"
    say "restarting the server"
    start_server 2

    local client_rc=0
    wait "$CLIENT_PID" || client_rc=$?
    CLIENT_PID=""
    wait "$GEN_PID" 2>/dev/null || true
    GEN_PID=""
    say "client exited with status $client_rc; stopping the server"
    stop_server
    wait # the log followers end with the processes they follow

    printf 'demo: client output: %s lines; first and last:\n' "$(wc -l <"$out")"
    head -n 3 "$out" | sed 's/^/    /'
    printf '    ...\n'
    tail -n 3 "$out" | sed 's/^/    /'
    demo_verdict "$out" "$err" "$client_rc"
}

# ---------------------------------------------------------------------------- cluster demo

# A private redis-server, three lifeline-server --store-sync always and one lifeline-cat
# streaming through a rolling restart and a kill -9; non-zero if a line is lost or twice.
cmd_cluster_demo() {
    cmd_deps
    cmd_build build
    "$ROOT/tests/tools/cluster_demo.sh" "$ROOT/build"
}

# ---------------------------------------------------------------------------- benchmarks

# Benchmarks measure the Release build; a quiet machine gives steadier figures.
build_release() {
    cmd_deps
    cmd_build build-release -DCMAKE_BUILD_TYPE=Release
}

# cmd_bench [--peers] [ARGS...]: with --peers (anywhere in ARGS) PEER_DEPS first, so that
# CMake finds libnats and libmosquitto and builds the peer rows; --peers goes on to
# lifeline-bench with the rest.
cmd_bench() {
    local arg
    for arg in "$@"; do
        if [[ $arg == --peers ]]; then
            cmd_peer_deps
            break
        fi
    done
    build_release
    "$ROOT/build-release/bin/lifeline-bench" "$@"
}

cmd_scale() {
    build_release
    if [[ $# -eq 0 ]]; then set -- --clients 10000 --hold-s 30; fi
    "$ROOT/tests/bench/scale.sh" --build build-release "$@"
}

# cmd_wheel [DIR]: the Python wheel bundling DIR's library (bindings/python/build_wheel.sh).
cmd_wheel() {
    local dir=${1:-build}
    cmd_build "$dir" || die "build failed"
    "$ROOT/bindings/python/build_wheel.sh" --lib "$dir/lib/liblifeline.so.0" --out "$dir/dist"
}

# ---------------------------------------------------------------------------- main

main() {
    local cmd=${1:-}
    if [[ $# -gt 0 ]]; then shift; fi
    case $cmd in
    deps) cmd_deps ;;
    build) cmd_build "$@" ;;
    format) cmd_format "$@" ;;
    test) cmd_test ;;
    abi) cmd_abi "$@" ;;
    abi-baseline) cmd_abi_baseline "$@" ;;
    wheel) cmd_wheel "$@" ;;
    demo) cmd_demo ;;
    cluster-demo) cmd_cluster_demo ;;
    bench) cmd_bench "$@" ;;
    scale) cmd_scale "$@" ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 64
        ;;
    esac
}

main "$@"
