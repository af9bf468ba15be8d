"""compose.yaml runs two replicas on one PostgreSQL with pgvector, checked structurally
(Docker is not needed): each replica reads DEPTBOT_DATABASE_URL and the shared keys from
.env (required), migrates before it serves, has its own state volume and a /livez
healthcheck, and starts once the database answers."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
REPLICAS = [s for n, s in COMPOSE["services"].items() if n.startswith("deptbot")]


def test_postgres_with_pgvector_is_pinned_healthchecked_and_not_published() -> None:
    pg = COMPOSE["services"]["postgres"]
    image = pg["image"]
    assert image.startswith("pgvector/pgvector:") and re.search(r":\d[\w.]*-pg1[6-9]$", image), image
    assert "pg_isready" in pg["healthcheck"]["test"]
    assert "ports" not in pg
    password = pg["environment"]["POSTGRES_PASSWORD"]
    assert password.startswith("${POSTGRES_PASSWORD:?"), "required from .env, never a default"
    assert [v for v in pg["volumes"] if v.split(":")[0] in COMPOSE["volumes"]]


def test_two_replicas_share_the_database_and_keys_through_a_required_env_file() -> None:
    assert len(REPLICAS) == 2
    for service in REPLICAS:
        assert [e["path"] for e in service["env_file"]] == [".env"]
        assert all(e["required"] for e in service["env_file"])
        assert "environment" not in service  # secrets only through the env_file
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    header = (ROOT / "compose.yaml").read_text().split("x-deptbot")[0]
    for name in ("POSTGRES_PASSWORD", "DEPTBOT_DATABASE_URL", "DEPTBOT_AUDIT_KEY", "DEPTBOT_MASTER_KEY"):
        assert f"{name}=" in header, f"the comment at the top tells what .env holds: {name}"
    assert "@postgres:5432/" in header


def test_each_replica_migrates_then_serves_with_a_livez_healthcheck() -> None:
    ports, states = set(), set()
    for service in REPLICAS:
        assert service["entrypoint"][:2] == ["/bin/sh", "-c"]
        (script,) = service["command"]
        migrate, _, serve = script.partition("&&")
        assert shlex.split(migrate) == ["deptbot", "db", "migrate"]
        assert shlex.split(serve)[:5] == ["exec", "deptbot", "serve", "--host", "0.0.0.0"]
        check = service["healthcheck"]["test"]
        assert check[:2] == ["CMD", "python"] and "http://127.0.0.1:3978/livez" in check[-1]
        ports.add(service["ports"][0].split(":")[0])
        mounts = [v.split(":") for v in service["volumes"]]
        states |= {m[0] for m in mounts if m[1] == "/var/lib/deptbot" and m[0] in COMPOSE["volumes"]}
        assert ["./departments", "/srv/deptbot/departments", "ro"] in mounts
    assert len(ports) == 2 and len(states) == 2  # own published port and own state volume each


def test_the_image_installs_the_postgres_extra() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install \"?\.\[postgres\]\"?", dockerfile)
