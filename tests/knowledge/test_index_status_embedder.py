"""``status`` says stale exactly when the next refresh would build with another embedder.

The embedder wanted is the one a refresh uses: the department's own, else the settings'
default. A change of the settings' embedder is a rebuild due; the same name in another
case is not.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bot.config import Department
from bot.knowledge import KnowledgeBase, embedders
from bot.knowledge.embedders import Embedder
from tests.knowledge.conftest import TIME_OFF


class Renamed:
    """wordllama's vectors under another profile's name (no onnxruntime needed)."""

    def __init__(self, inner: Embedder, name: str) -> None:
        self.inner, self.name, self.dim, self.is_cloud = inner, name, inner.dim, False

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed(texts)


@pytest.fixture
def minilm(wordllama: Embedder, monkeypatch: pytest.MonkeyPatch) -> Embedder:
    fake = Renamed(wordllama, "minilm")
    monkeypatch.setitem(embedders._INSTANCES, "minilm", fake)
    return fake


def test_a_change_of_the_settings_embedder_marks_the_index_stale(
    tmp_path: Path, dept: Department, write: Callable[..., Path], minilm: Embedder
) -> None:
    write("time-off.md", TIME_OFF)
    state = tmp_path / "state"
    KnowledgeBase(state_dir=state, embedder="wordllama").refresh(dept)
    assert not KnowledgeBase(state_dir=state, embedder="wordllama").status(dept).stale
    switched = KnowledgeBase(state_dir=state, embedder="minilm")  # [retrieval] embedder = "minilm"
    assert switched.status(dept).stale
    switched.refresh(dept)
    assert switched.reader.loaded("hr").embedder == "minilm"  # type: ignore[union-attr]
    assert not switched.status(dept).stale
    assert KnowledgeBase(state_dir=state, embedder="wordllama").status(dept).stale  # and back


def test_the_department_embedder_in_another_case_is_not_stale_forever(
    tmp_path: Path, dept: Department, write: Callable[..., Path], minilm: Embedder
) -> None:
    write("time-off.md", TIME_OFF)
    mixed = dept.model_copy(update={"embedder": "MiniLM"})  # as a YAML file might spell it
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder="wordllama")
    kb.refresh(mixed)
    assert kb.reader.loaded("hr").embedder == "minilm"  # type: ignore[union-attr]
    assert not kb.status(mixed).stale
    assert kb.status(dept).stale  # the department back on the settings' wordllama


def test_an_unknown_embedder_name_is_stale_not_a_crash(
    tmp_path: Path, dept: Department, write: Callable[..., Path]
) -> None:
    write("time-off.md", TIME_OFF)
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder="wordllama")
    kb.refresh(dept)
    assert kb.status(dept.model_copy(update={"embedder": "nope"})).stale  # the refresh says why
