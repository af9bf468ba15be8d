"""A plain ``pip install .`` (a wheel, not an editable install) carries what the code reads
at run time: the packaged settings defaults. (It broke on first run before.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_the_settings_defaults(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")  # built without isolation: nothing is downloaded
    src = tmp_path / "src"  # a clean copy: no build/ left over from an earlier build
    shutil.copytree(ROOT / "bot", src / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = tmp_path / "dist"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = out.glob("deptbot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "bot/settings.toml" in names
    sources = {p.relative_to(src).as_posix() for p in (src / "bot").rglob("*.py")}
    assert sources <= names
