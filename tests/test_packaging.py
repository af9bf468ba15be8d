"""A plain ``pip install .`` (a wheel, not an editable install) carries what the code reads
at run time: the settings defaults, the Slack and Teams manifest templates and the Teams
icons. (It broke on first run before.)

The sdist is built from a clean copy of the checkout, the wheel from that sdist (so both
are proven complete), and the wheel is installed into a fresh venv outside the checkout.
Nothing is downloaded: builds run without isolation and the install is ``--no-deps
--no-index``; the new venv borrows this interpreter's installed dependencies through a
``.pth`` line (which adds the folder only: its own ``.pth`` files, such as an editable
install of this checkout, are not run), and the test asserts ``bot`` is imported from the
new venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MANIFEST_FILES = sorted(
    p.relative_to(ROOT / "manifest").as_posix() for p in (ROOT / "manifest").rglob("*") if p.is_file()
)


@dataclass(frozen=True)
class Installed:
    src: Path
    sdist_names: set[str]
    wheel_names: set[str]
    python: Path  # the fresh venv's interpreter
    deptbot: Path  # its console script
    site: Path  # its site-packages


def _run(argv: list[str | Path], *, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DEPTBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_", "MICROSOFT_", "PYTHON", "PIP_"))
    }
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    pytest.importorskip("setuptools", minversion="77")  # built without isolation: nothing is downloaded
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"  # a clean copy: no build/ or egg-info left over from an earlier build
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "_manifest")
    for folder in ("bot", "manifest"):
        shutil.copytree(ROOT / folder, src / folder, ignore=skip)
    for name in ("pyproject.toml", "README.md", "setup.py"):
        shutil.copy(ROOT / name, src / name)

    dist = tmp / "dist"
    hook = "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))"
    name = _ok(_run([sys.executable, "-c", hook, dist], cwd=src)).strip().splitlines()[-1]
    sdist = dist / name
    with tarfile.open(sdist) as tf:
        top = f"{name.removesuffix('.tar.gz')}/"
        sdist_names = {m.name.removeprefix(top) for m in tf.getmembers() if m.isfile()}

    wheels = tmp / "wheels"
    pip_wheel = ["-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels]
    _ok(_run([sys.executable, *pip_wheel, sdist], cwd=tmp, timeout=300))  # the wheel is built from the sdist
    (wheel,) = wheels.glob("deptbot-*.whl")
    wheel_names = set(zipfile.ZipFile(wheel).namelist())

    venv = tmp / "venv"
    _ok(_run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp))
    python = venv / "bin" / "python"
    site = Path(
        _ok(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp)).strip()
    )
    # pip from this interpreter installs into the empty venv; the dependencies come after
    _ok(
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                python,
                "install",
                "-q",
                "--no-deps",
                "--no-index",
                wheel,
            ],
            cwd=tmp,
        )
    )
    (site / "borrowed-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return Installed(src, sdist_names, wheel_names, python, venv / "bin" / "deptbot", site)


def test_the_wheel_carries_the_code_settings_and_manifest_templates(installed: Installed) -> None:
    names = installed.wheel_names
    assert "bot/settings.toml" in names
    assert {f"bot/_manifest/{f}" for f in MANIFEST_FILES} <= names
    assert {"slack/manifest.yaml", "teams/manifest.json", "teams/color.png", "teams/outline.png"} <= set(
        MANIFEST_FILES
    )
    sources = {p.relative_to(installed.src).as_posix() for p in (installed.src / "bot").rglob("*.py")}
    assert sources <= names
    assert not any(n.startswith(("manifest/", "tests/", "departments/")) for n in names)  # only bot/


def test_the_sdist_carries_the_editable_sources_once(installed: Installed) -> None:
    names = installed.sdist_names
    assert {"pyproject.toml", "setup.py", "README.md", "bot/settings.toml"} <= names
    assert {f"manifest/{f}" for f in MANIFEST_FILES} <= names
    assert not any(n.startswith("bot/_manifest") for n in names)  # one copy: the one people edit


def test_the_installed_package_runs_outside_the_checkout(installed: Installed, tmp_path: Path) -> None:
    company = tmp_path / "company"  # the sample company, and nothing else of the checkout
    for folder in ("departments", "knowledge"):
        shutil.copytree(ROOT / folder, company / folder)

    where = _ok(_run([installed.python, "-c", "import bot; print(bot.__file__)"], cwd=company))
    assert Path(where.strip()).is_relative_to(installed.site)

    deptbot = [installed.deptbot, "--state", tmp_path / "state"]
    assert _ok(_run([installed.deptbot, "--version"], cwd=company)).strip() == "deptbot 0.1.0"
    assert "extractive   configured" in _ok(_run([*deptbot, "check"], cwd=company))

    ask = [*deptbot, "ask", "How many vacation days do I get?", "--user", "alice@example.com", "--json"]
    answer = json.loads(_ok(_run(ask, cwd=company)))
    assert answer["status"] == "answered" and answer["department"] == "hr"
    assert any(c["path"].endswith("time-off.md") for c in answer["citations"])

    slack = _ok(_run([*deptbot, "manifest", "slack", "--url", "https://x.example.com"], cwd=company))
    assert "https://x.example.com/slack/events" in slack and "YOUR-HOST" not in slack

    out = tmp_path / "teams.zip"
    app_id = str(uuid.uuid4())
    teams = [*deptbot, "manifest", "teams", "--app-id", app_id, "--domain", "bot.example.com", "--out", out]
    _ok(_run(teams, cwd=company))
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        assert json.loads(zf.read("manifest.json"))["bots"][0]["botId"] == app_id


def test_version_is_written_once(installed: Installed) -> None:
    import bot

    assert f"deptbot-{bot.__version__}.dist-info/METADATA" in installed.wheel_names
    assert bot.package_version() == bot.__version__
