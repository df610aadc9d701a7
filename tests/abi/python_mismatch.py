"""The Python binding refuses, at import and with a clear message, a library it would
misread: one from before the ABI check (the 0.1 stand-in: no sdk_version), one of another
major version, one whose sdk_message differs in size (both fakes: tests/abi/fake_abi.c).
The real library (LIFELINE_LIBRARY) imports.

    python_mismatch.py --binding DIR --v01 LIB --other-major LIB --struct-size LIB
"""
import argparse
import os
import subprocess
import sys

parser = argparse.ArgumentParser()
for flag in ("--binding", "--v01", "--other-major", "--struct-size"):
    parser.add_argument(flag, required=True)
args = parser.parse_args()


def import_with(library):
    env = dict(os.environ, LIFELINE_LIBRARY=library, PYTHONPATH=args.binding, PYTHONDONTWRITEBYTECODE="1")
    code = "import lifeline; print(lifeline.library_version)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


failures = []
cases = [
    (args.v01, "is older than this binding (no sdk_version/sdk_struct_size"),
    (args.other_major, "is version 1.0.0; this binding is for 0.2 or a newer 0.x"),
    (args.struct_size, "does not match this binding: sdk_message is"),
]
for library, expected in cases:
    result = import_with(library)
    last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    if result.returncode == 0 or not last.startswith("ImportError: lifeline: ") or expected not in last:
        failures.append(f"{library}: expected an ImportError with {expected!r}, got rc={result.returncode}: {last!r}")
    else:
        print(f"refused clearly: {last}")

real = import_with(os.environ["LIFELINE_LIBRARY"])
if real.returncode != 0:
    failures.append(f"the real library did not import: {real.stderr.strip()}")
else:
    print(f"the real library imports: version {real.stdout.strip()}")
if failures:
    sys.exit("\n".join(failures))
