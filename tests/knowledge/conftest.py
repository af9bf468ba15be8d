"""Fixtures for knowledge tests: tiny knowledge folders built in tmp_path, one embedder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bot.config import Department
from bot.core.types import AccessScope, Classification
from bot.knowledge import KnowledgeBase
from bot.knowledge.embedders import Embedder, get_embedder


class CountingEmbedder:
    """Wraps a real embedder and remembers every text it was asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.is_cloud = False
        self.texts: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="session")
def wordllama() -> Embedder:
    emb = get_embedder("wordllama")
    emb.embed(["warm up"])
    return emb


@pytest.fixture
def counting(wordllama: Embedder) -> CountingEmbedder:
    return CountingEmbedder(wordllama)


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    root = tmp_path / "repo" / "knowledge" / "hr"
    root.mkdir(parents=True)

    def _write(rel: str, content: str | bytes) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def dept(tmp_path: Path, write: Callable[..., Path]) -> Department:
    return Department(
        name="hr",
        title="HR",
        knowledge=tmp_path / "repo" / "knowledge" / "hr",
        classification=Classification.INTERNAL,
    )


@pytest.fixture
def kb(tmp_path: Path, counting: CountingEmbedder) -> KnowledgeBase:
    return KnowledgeBase(state_dir=tmp_path / "state", embedder=counting)


def scope(*keys: str) -> AccessScope:
    return AccessScope(department="hr", keys=frozenset({"*", *keys}))


TIME_OFF = """---
title: Time off
keywords: leave
---
# Time off

Everyone gets time to rest.{% include "liquid-noise.html" %}

## Annual vacation

Employees receive 25 days of annual vacation per calendar year. Unused vacation days
carry over until March 31 of the following year.

## Sick leave

Report sick leave to your manager before 10am. A doctor's note is needed after three days.
"""
