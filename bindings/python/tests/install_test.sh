#!/usr/bin/env bash
# install_test.sh: the ways a Python user installs this binding, each in a fresh venv of
# Debian's /usr/bin/python3, with no package index (PIP_NO_INDEX, no pip config file):
#
#   1. pip install of the source in a --system-site-packages venv (the issue's failing
#      case): builds offline with the machine's setuptools; imports with LIFELINE_LIBRARY.
#   2. cmake --install BUILD into a temp prefix, then in a plain venv pip install of the
#      source, then `python -c "import lifeline"` from /tmp with an empty environment: the
#      package finds the library where cmake --install recorded it. The cmake-installed
#      package in <prefix>/lib/python3.X/dist-packages imports too.
#   3. the wheel build_wheel.sh makes from BUILD's library, in a plain venv: imports from
#      /tmp with an empty environment, and loads the copy inside the venv.
#
#   install_test.sh --build DIR --work DIR
#
# The source is copied into WORK first, and cmake --install's record for a later pip
# install goes into that copy (LIFELINE_PYTHON_RECORD), so the checkout is left as it was.
set -euo pipefail

die() { printf 'install_test.sh: FAIL: %s\n' "$*" >&2; exit 1; }
step() { printf 'install_test.sh: %s\n' "$*"; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3
build='' work=''
while [[ $# -gt 0 ]]; do
    case $1 in
        --build) build=$(cd "${2:?}" && pwd); shift 2 ;;
        --work) work=${2:?}; shift 2 ;;
        *) die "unknown argument: $1" ;;
    esac
done
[[ -n $build && -n $work ]] || die "usage: install_test.sh --build DIR --work DIR"
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)

export PIP_NO_INDEX=1 PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
# A clean environment for the imports: what a new shell of a new user has.
clean_env=(env -i PATH=/usr/bin:/bin HOME="$work")

fresh_source() {  # fresh_source DIR: a copy of the package source without local state
    mkdir -p "$1"
    cp -r "$HERE/lifeline" "$HERE/_build" "$HERE/pyproject.toml" "$HERE/setup.py" "$HERE/README.md" "$1/"
    rm -rf "$1/lifeline/__pycache__" "$1/lifeline/_library_location" "$1/lifeline/_lib"
}

# expect_import VENV WANT_LIBRARY [ENV...]: import lifeline from /tmp, check which library it loaded.
expect_import() {
    local venv=$1 want=$2 got
    shift 2
    got=$(cd /tmp && "${clean_env[@]}" "$@" "$venv/bin/python" -c \
        'import lifeline; print(lifeline.library_path)') || die "import lifeline in $venv failed"
    [[ $got == "$want" ]] || die "$venv loaded $got, expected $want"
    step "ok: $venv imports lifeline with $got"
}

step "1. pip install of the source, --system-site-packages venv, offline"
fresh_source "$work/src1"
"$PY" -m venv --system-site-packages "$work/venv1"
"$work/venv1/bin/pip" install --quiet "$work/src1" || die "pip install (system-site-packages venv)"
expect_import "$work/venv1" "$build/lib/liblifeline.so.0" LIFELINE_LIBRARY="$build/lib/liblifeline.so.0"

step "2. cmake --install, then pip install of the source in a plain venv, offline"
fresh_source "$work/src2"
LIFELINE_PYTHON_RECORD="$work/src2/lifeline/_library_location" \
    cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" || die "cmake --install (see $work/install.log)"
library=$work/prefix/lib/liblifeline.so.0
[[ -e $library ]] || library=$(ls "$work"/prefix/lib*/liblifeline.so.0 "$work"/prefix/lib/*/liblifeline.so.0 2>/dev/null | head -1)
[[ -e $library ]] || die "cmake --install put no liblifeline.so.0 under $work/prefix"
"$PY" -m venv "$work/venv2"
"$work/venv2/bin/pip" install --quiet "$work/src2" || die "pip install (plain venv)"
expect_import "$work/venv2" "$library"
sitedir=$(ls -d "$work"/prefix/lib/python3*/*-packages | head -1)
[[ -f $sitedir/lifeline/__init__.py ]] || die "cmake --install did not install the Python package"
got=$(cd /tmp && "${clean_env[@]}" PYTHONPATH="$sitedir" "$PY" -c 'import lifeline; print(lifeline.library_path)') \
    || die "the package cmake --install put in $sitedir does not import"
[[ $got == "$library" ]] || die "the cmake-installed package loaded $got, expected $library"
step "ok: the cmake-installed package in $sitedir imports with $got"

step "3. the wheel with the library inside, plain venv, offline"
wheel=$("$HERE/build_wheel.sh" --lib "$build/lib/liblifeline.so.0" --out "$work/dist") || die "build_wheel.sh"
"$PY" -m venv "$work/venv3"
"$work/venv3/bin/pip" install --quiet "$wheel" || die "pip install $wheel"
bundled=$(ls "$work"/venv3/lib/python3*/site-packages/lifeline/_lib/liblifeline.so.0)
expect_import "$work/venv3" "$bundled"
step "PASS"
