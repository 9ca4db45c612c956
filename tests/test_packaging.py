"""The built distributions carry what an installed rbfi needs (issue 14).

The wheel is built offline from a copy of the package's files (pip, no build isolation), so the
test never writes into the checkout; its file list is checked against the source tree.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import rbfi

REPO = Path(__file__).resolve().parents[1]
PACKAGE_FILES = ("pyproject.toml", "README.md", "LICENSE")


def package_sources() -> list[str]:
    """Every file under rbfi/ that an installed package needs: the modules and kernel sources."""
    found = []
    for pattern in ("*.py", "*.c", "*.h"):
        found += [p.relative_to(REPO).as_posix() for p in (REPO / "rbfi").rglob(pattern)]
    return sorted(found)


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in PACKAGE_FILES:
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "rbfi", src / "rbfi", ignore=shutil.ignore_patterns("__pycache__"))
    return src


@pytest.fixture(scope="module")
def wheel(source_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    out = subprocess.run(
        [*cmd, "--quiet", "--wheel-dir", str(dist), str(source_copy)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (path,) = dist.glob("rbfi-*.whl")
    return path


def test_wheel_carries_the_kernel_source_and_every_module(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "rbfi/ops/rbfi_cpu.c" in names
    missing = [name for name in package_sources() if name not in names]
    assert missing == [], f"left out of the wheel: {missing}"


def test_wheel_metadata_version_license_and_entry_point(wheel: Path) -> None:
    assert wheel.name.startswith(f"rbfi-{rbfi.__version__}-")
    archive = zipfile.ZipFile(wheel)
    info = f"rbfi-{rbfi.__version__}.dist-info"
    meta = email.message_from_bytes(archive.read(f"{info}/METADATA"))
    assert meta["Name"] == "rbfi" and meta["Version"] == rbfi.__version__
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert meta.get_all("License-File") == ["LICENSE"]
    license_text = archive.read(f"{info}/licenses/LICENSE").decode()
    assert license_text == (REPO / "LICENSE").read_text()
    assert "BSD 3-Clause License" in license_text and "the rbfi authors" in license_text
    entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert "[console_scripts]" in entry_points
    assert "rbfi = rbfi.cli:main" in entry_points.splitlines()
    extras = meta.get_all("Provides-Extra")
    assert {"dev", "attacks", "ray"} <= set(extras)
    assert any(r.startswith("scipy") and "attacks" in r for r in meta.get_all("Requires-Dist"))


def test_sdist_carries_license_and_kernel_source(source_copy: Path, tmp_path: Path) -> None:
    """The sdist, by setuptools' own build backend (what `python -m build --sdist` calls)."""
    script = (
        "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=source_copy,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    name = out.stdout.strip().splitlines()[-1]
    assert name == f"rbfi-{rbfi.__version__}.tar.gz"
    with tarfile.open(tmp_path / name) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"LICENSE", "pyproject.toml", "rbfi/ops/rbfi_cpu.c", "rbfi/_version.py"} <= names
