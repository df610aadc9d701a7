#!/usr/bin/env bash
# build_wheel.sh: a wheel of this binding with liblifeline.so.0 inside, as pyzmq's wheels
# carry libzmq, so that `pip install lifeline-*.whl` needs no C build on the target.
#
#   build_wheel.sh --lib PATH/liblifeline.so.0 --out DIR [--python PATH]
#
# Copies the package into a temp dir, puts the library in lifeline/_lib/ (found there
# first after LIFELINE_LIBRARY), and runs `pip wheel` on it with this machine's setuptools
# and wheel (no network). The wheel is py3-none-<platform>: ctypes, any Python 3. The
# library's own dependencies (libssl3, libprotobuf-c1, libc-ares2, libhiredis0.14 on Debian
# 12) stay system packages. Prints the wheel's path.
set -euo pipefail

die() { printf 'build_wheel.sh: %s\n' "$*" >&2; exit 1; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lib='' out='' python=/usr/bin/python3
while [[ $# -gt 0 ]]; do
    case $1 in
        --lib) lib=${2:?}; shift 2 ;;
        --out) out=${2:?}; shift 2 ;;
        --python) python=${2:?}; shift 2 ;;
        *) die "unknown argument: $1" ;;
    esac
done
[[ -n $lib && -n $out ]] || die "usage: build_wheel.sh --lib PATH/liblifeline.so.0 --out DIR"
[[ -f $lib ]] || die "no library at $lib (build it first: bash setup.sh build)"

stage=$(mktemp -d "${TMPDIR:-/tmp}/lifeline-wheel.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/src" "$out"
cp -r "$HERE/lifeline" "$HERE/_build" "$HERE/pyproject.toml" "$HERE/setup.py" "$HERE/README.md" "$stage/src/"
rm -rf "$stage/src/lifeline/__pycache__" "$stage/src/lifeline/_library_location" "$stage/src/lifeline/_lib"
mkdir -p "$stage/src/lifeline/_lib"
cp -L "$lib" "$stage/src/lifeline/_lib/liblifeline.so.0"
PIP_NO_INDEX=1 "$python" -m pip wheel --quiet --no-deps --no-cache-dir -w "$stage/dist" "$stage/src" >&2
wheel=$(ls "$stage"/dist/lifeline-*.whl)
cp "$wheel" "$out/"
printf '%s\n' "$out/$(basename "$wheel")"
