"""Retrieval: access filter inside the query, calibrated scores, reload on new versions."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from bot.config import Department
from bot.core.types import AccessScope, Classification
from bot.errors import IndexMissing
from bot.knowledge import KnowledgeBase
from bot.knowledge.embedders import Embedder
from tests.knowledge.conftest import TIME_OFF, scope

CANARY = "CANARY-7f3a"
SALARIES = f"""---
title: Salary bands
audience: [group:payroll]
---
# Salary bands

## Engineering

Engineering salary bands for 2025 are listed here. The vacation of payroll staff is
managed separately. Secret marker {CANARY} annual vacation days salary.
"""


@pytest.fixture
def indexed(kb: KnowledgeBase, dept: Department, write: Callable[..., Path]) -> KnowledgeBase:
    write("time-off.md", TIME_OFF)
    write("it/laptops.md", "# Laptops\n\n## Replacement\n\nLaptops are replaced every four years by IT.\n")
    write("payroll/salaries.md", SALARIES)
    write(
        "payroll/_access.yaml",
        "audience: ['group:payroll', 'cfo@example.com']\nclassification: confidential\n",
    )
    kb.refresh(dept)
    return kb


def test_restricted_canary_never_returned_without_access(indexed: KnowledgeBase) -> None:
    for query in (CANARY, "salary bands", "annual vacation days", "anything at all"):
        chunks = indexed.retrieve(query, scope("group:engineering"), top_k=100)
        assert all(CANARY not in c.text for c in chunks)
        assert all(not c.doc_id.startswith("hr/payroll/") for c in chunks)
        assert len(chunks) <= 4  # only the visible chunks exist for this scope
    # cfo matches the folder but not the front-matter audience: still hidden
    assert all(CANARY not in c.text for c in indexed.retrieve(CANARY, scope("cfo@example.com"), top_k=100))
    allowed = indexed.retrieve(f"{CANARY} salary bands", scope("group:payroll"), top_k=3)
    assert allowed[0].doc_id == "hr/payroll/salaries.md" and CANARY in allowed[0].text
    assert allowed[0].classification == Classification.CONFIDENTIAL
    assert allowed[0].audiences == (("group:payroll", "cfo@example.com"), ("group:payroll",))


def test_post_check_drops_chunks_outside_scope(
    indexed: KnowledgeBase, caplog: pytest.LogCaptureFixture
) -> None:
    index = indexed.reader.loaded("hr")
    assert index is not None
    broken = np.ones(index.n, dtype=bool)  # simulate a wrong mask: everything visible
    index.mask = lambda scope: broken  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        chunks = indexed.retrieve(CANARY, scope(), top_k=10)
    assert all(CANARY not in c.text for c in chunks)
    assert "hr/payroll/salaries.md#0" in caplog.text and CANARY not in caplog.text


def test_source_chunk_fields(indexed: KnowledgeBase) -> None:
    top = indexed.retrieve("how many days of annual vacation do I get", scope(), top_k=3)[0]
    assert top.doc_id == "hr/time-off.md" and top.chunk_id == "hr/time-off.md#1"
    assert top.path == "knowledge/hr/time-off.md"
    assert top.anchor == "Annual vacation"
    assert top.title == "Time off" and top.department == "hr"
    assert isinstance(top.modified, datetime) and top.classification == Classification.INTERNAL


def test_scores_are_calibrated(indexed: KnowledgeBase) -> None:
    on = indexed.retrieve("How many days of annual vacation do employees get?", scope(), top_k=5)
    off = indexed.retrieve("What is the cafeteria menu on Tuesday?", scope(), top_k=5)
    assert on[0].score >= 0.5
    assert off[0].score < 0.35 and off[0].score < on[0].score - 0.2
    for chunks in (on, off):
        scores = [c.score for c in chunks]
        assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)


def test_reader_picks_up_new_version_from_another_instance(
    indexed: KnowledgeBase, dept: Department, write: Callable[..., Path], tmp_path: Path, wordllama: Embedder
) -> None:
    before = indexed.index_version("hr")
    assert not any("parking" in c.text for c in indexed.retrieve("parking garage", scope(), top_k=10))
    write("parking.md", "# Parking\n\nThe parking garage opens at 7am for staff with a badge.\n")
    other = KnowledgeBase(state_dir=tmp_path / "state", embedder=wordllama)
    other.refresh(dept)
    assert indexed.index_version("hr") != before
    assert indexed.retrieve("parking garage", scope(), top_k=1)[0].doc_id == "hr/parking.md"


def test_missing_index(kb: KnowledgeBase) -> None:
    assert kb.index_version("nope") is None
    with pytest.raises(IndexMissing):
        kb.retrieve("anything", AccessScope(department="nope", keys=frozenset({"*"})))


def test_rrf_fusion_also_filters(tmp_path: Path, indexed: KnowledgeBase, wordllama: Embedder) -> None:
    rrf = KnowledgeBase(state_dir=tmp_path / "state", embedder=wordllama, fusion="rrf")
    chunks = rrf.retrieve(CANARY, scope(), top_k=50)
    assert chunks and all(CANARY not in c.text for c in chunks)
