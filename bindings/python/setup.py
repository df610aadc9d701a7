"""setuptools reads pyproject.toml; this file only tags the wheel that bundles liblifeline.so.

A wheel with lifeline/_lib/liblifeline.so.0 inside (bash setup.sh wheel) is for one platform
but any Python 3 (ctypes, no extension module): py3-none-<platform>, not pure.
"""

from pathlib import Path

from setuptools import setup
from wheel.bdist_wheel import bdist_wheel

BUNDLED = any((Path(__file__).resolve().parent / "lifeline" / "_lib").glob("liblifeline.so*"))


class BdistWheel(bdist_wheel):  # type: ignore[misc]
    def finalize_options(self) -> None:
        super().finalize_options()
        if BUNDLED:
            self.root_is_pure = False

    def get_tag(self) -> tuple:  # type: ignore[type-arg]
        python, abi, platform = super().get_tag()
        return ("py3", "none", platform) if BUNDLED else (python, abi, platform)


setup(cmdclass={"bdist_wheel": BdistWheel})
