"""The 0.1 Python binding's ctypes mirror (tests/abi/v0.1/python/_native.py, frozen), loaded
against the current library (LIFELINE_LIBRARY): its struct mirror has no size field, so it
must be refused at import, clearly, before any struct is passed. It is: 0.1's
sdk_config_init exists only as sdk_config_init@LIFELINE_0.1, which dlsym does not return."""
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    runpy.run_path(os.path.join(HERE, "v0.1", "python", "_native.py"))
except AttributeError as exc:
    if "undefined symbol: sdk_config_init" not in str(exc):
        sys.exit(f"old binding: refused, but not clearly: {exc}")
    print(f"old binding: refused clearly ({exc})")
    sys.exit(0)
sys.exit("old binding: loaded against a library whose configs it would misread")
