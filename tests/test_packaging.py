"""Packaging: every data file the packages load at run time is declared as package data.

A file missing from [tool.setuptools.package-data] is absent from a non-editable install
(`pip install .`, the README's demo command) while editable installs and the test suite, which
run from the checkout, never notice: the demo once failed writing its report for that reason.
"""

from __future__ import annotations

import fnmatch
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")


def _package_files():
    """Non-Python files under the import packages, from git (or the tree when not a checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "bridge", "firmware_protocol"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        out = [str(p.relative_to(ROOT)) for pkg in ("bridge", "firmware_protocol")
               for p in (ROOT / pkg).rglob("*") if p.is_file()]
    skip = (".py", ".pyc", ".so", ".pyd", ".c")  # sources and build products of the native modules
    return [f for f in out if not f.endswith(skip) or f.startswith("firmware_protocol/c/")]


def test_every_package_data_file_is_declared():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = config["tool"]["setuptools"]["package-data"]
    files = _package_files()
    assert files, "found no package data files at all: the listing itself is broken"
    missing = []
    for f in files:
        pkg, rel = f.split("/", 1)
        if not any(fnmatch.fnmatch(rel, pat) for pat in declared.get(pkg, [])):
            missing.append(f)
    assert not missing, (f"files not in [tool.setuptools.package-data] (they would be absent "
                         f"from `pip install .`): {missing}")



def test_declared_licence_files_exist():
    # setuptools refuses to build when a license-files pattern matches nothing; catch it here.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["project"]["license-files"]
    assert patterns
    for pattern in patterns:
        assert list(ROOT.glob(pattern)), f"license-files pattern {pattern!r} matches no file"
