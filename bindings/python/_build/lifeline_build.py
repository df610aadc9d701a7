"""The PEP 517 build backend of this package: setuptools.build_meta, with its requirements
(setuptools, wheel) taken from this machine instead of downloaded.

Why: pip builds a pyproject.toml package in an isolated environment and installs its build
requirements there from a package index, so `pip install ./bindings/python` fails offline
although Debian's python3-setuptools and python3-wheel (or the setuptools that `python3 -m
venv` puts in every venv) are installed. This backend declares no requirements (pip then
installs nothing) and, inside pip's build environment, makes the interpreter's own copies
importable: first the environment's site-packages (a venv's), then the base interpreter's
(Debian's /usr/lib/python3/dist-packages). Packaging itself is setuptools' own.
"""

from __future__ import annotations

import importlib.util
import site
import sys
import sysconfig
from typing import Any, Dict, List, Optional

_NEEDED = ("setuptools", "wheel")


def _missing() -> List[str]:
    return [name for name in _NEEDED if importlib.util.find_spec(name) is None]


def _site_dirs() -> List[str]:
    """Where this interpreter keeps packages, its own environment first."""
    dirs = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    dirs += site.getsitepackages([sys.base_prefix])
    return list(dict.fromkeys(dirs))


def _find_build_requirements() -> None:
    for directory in _site_dirs():
        if not _missing():
            return
        if directory not in sys.path:
            sys.path.append(directory)
            importlib.invalidate_caches()
    if _missing():
        raise RuntimeError(
            "lifeline: building needs " + " and ".join(_missing()) + ", looked for in "
            + ", ".join(_site_dirs()) + ". On Debian: apt-get install python3-setuptools python3-wheel"
        )


_find_build_requirements()

from setuptools import build_meta as _setuptools  # noqa: E402

_Settings = Optional[Dict[str, Any]]


def get_requires_for_build_wheel(config_settings: _Settings = None) -> List[str]:
    return []  # setuptools asks for "wheel", which _find_build_requirements already found


def get_requires_for_build_sdist(config_settings: _Settings = None) -> List[str]:
    return []


def get_requires_for_build_editable(config_settings: _Settings = None) -> List[str]:
    return []


build_wheel = _setuptools.build_wheel
build_sdist = _setuptools.build_sdist
prepare_metadata_for_build_wheel = _setuptools.prepare_metadata_for_build_wheel
build_editable = _setuptools.build_editable
prepare_metadata_for_build_editable = _setuptools.prepare_metadata_for_build_editable
