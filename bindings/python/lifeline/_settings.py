"""Durations in seconds, as Python takes them; the C configs hold milliseconds.

Every duration keyword of Client and Server is in seconds (float or int; None keeps the
library default). The millisecond names of earlier releases (connect_timeout_ms=, ...) still
work, with a DeprecationWarning; giving both spellings of one setting is a TypeError.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Dict, Mapping, Optional

_INT_MAX = 2**31 - 1


def seconds_to_ms(name: str, value: float) -> int:
    """A duration in seconds as the C library's whole milliseconds. A positive duration never
    rounds to 0 (which would mean "the default"); the C int bounds are checked, not wrapped."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name}={value} is not a finite number of seconds")
    ms = math.ceil(value * 1000) if value >= 0 else -math.ceil(-value * 1000)
    if not -_INT_MAX - 1 <= ms <= _INT_MAX:
        raise ValueError(f"{name}={value} s is out of range (at most {_INT_MAX / 1000:.0f} s)")
    return ms


def durations(seconds: Mapping[str, Optional[float]], deprecated_ms: Mapping[str, Any],
              owner: str) -> Dict[str, Optional[int]]:
    """{"<name>_ms": milliseconds or None} for every name in `seconds`, from the seconds
    keywords and the deprecated "<name>_ms" ones (which warn). Another keyword in
    deprecated_ms is a TypeError, as Python gives for an unknown keyword."""
    for key in deprecated_ms:
        base = key[:-3] if key.endswith("_ms") else None
        if base is None or base not in seconds:
            raise TypeError(f"{owner}() got an unexpected keyword argument {key!r}")
        if seconds[base] is not None:
            raise TypeError(f"{owner}(): give {base}= (seconds) or {key}= (deprecated), not both")
        # stacklevel 3: the warning names the caller of Client(...) / Server(...).
        warnings.warn(f"{owner}({key}=) is deprecated: use {base}= in seconds", DeprecationWarning, stacklevel=3)
    out: Dict[str, Optional[int]] = {}
    for name, value in seconds.items():
        legacy = deprecated_ms.get(name + "_ms")
        if value is not None:
            out[name + "_ms"] = seconds_to_ms(name, value)
        elif legacy is not None:
            if isinstance(legacy, bool) or not isinstance(legacy, int):
                raise TypeError(f"{name}_ms must be an int, not {type(legacy).__name__}")
            out[name + "_ms"] = legacy
        else:
            out[name + "_ms"] = None
    return out
