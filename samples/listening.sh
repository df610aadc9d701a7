# shellcheck shell=bash
# listening.sh: sourced by the sample test scripts (bash).
#
# start_listening PIDVAR OUT ERR WAIT_S PROGRAM [ARG]...: start PROGRAM in the background
# with stdout to OUT and stderr appended to ERR, keep its PID in the variable named PIDVAR
# (so the caller's cleanup trap can always stop it), and wait for its "listening on
# HOST:PORT" line; sets port. A port just given up may still be busy for a moment, so a
# program that exits early is started again until WAIT_S seconds have passed. Returns 1 if
# it never came up.
start_listening() {
    local -n pid_ref=$1
    local out=$2 err=$3 deadline=$((SECONDS + $4)) line
    shift 4
    while ((SECONDS <= deadline)); do
        : >"$out"
        "$@" >"$out" 2>>"$err" &
        pid_ref=$!
        while kill -0 "$pid_ref" 2>/dev/null && ((SECONDS <= deadline)); do
            line=$(grep -m1 '^listening on ' "$out" || true)
            if [[ -n $line ]]; then
                # shellcheck disable=SC2034 # port is for the caller
                port=${line##*:}
                return 0
            fi
            sleep 0.05
        done
        wait "$pid_ref" 2>/dev/null || true
        pid_ref=
        sleep 0.1
    done
    return 1
}
