"""Immutable index segments: written once, shared by every version that lists them.

A segment holds the chunks of some documents, in the layout a whole version had before
segments existed (``meta.json``, ``docs.json``, ``anchors.json``, ``texts.bin`` +
``text_offsets.npy``, ``chunk_doc.npy``, ``dense.npy`` float16, ``tokens.npy`` +
``token_offsets.npy`` + ``vocab.json``, ``bm25/`` with per-posting term frequencies, and
``ann.faiss`` in big departments). So a version written by the old code reads as one
segment, and a segment folder loads on its own.

Why segments: a refresh used to rewrite every chunk, vector and token of the department
(9.45 s and an 871 MB peak to change one file of 100k chunks). Now it writes only the
changed documents as a new segment plus a small manifest (``bot/knowledge/index.py``);
a changed or removed document's old chunks are TOMBSTONED in the manifest (dead
document numbers per segment) and stay on disk until a merge rewrites their segment.

Reading (:class:`Segment`) is read-only and memory-mapped where it matters; a reader
keeps loaded segments across versions (``bot/knowledge/retrieve.py``), so switching to a
version that adds one small segment loads only that segment.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import KnowledgeError
from bot.knowledge import ann, lexical

SEGMENTS = "segments"
FORMAT = 1  # the segment (old version) layout; manifests are format 2


@dataclass
class IndexData:
    """The chunks of some documents, in memory (a new segment, or one being merged)."""

    embedder: str
    dim: int
    docs: list[dict[str, Any]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    anchors: list[str] = field(default_factory=list)
    dense: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float16))
    tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    token_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    vocab: list[str] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: list[dict[str, str]] = field(default_factory=list)


def new_name() -> str:
    """Sortable by time of writing, unique across processes."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{now % 1:.6f}"[1:]
    return f"{stamp}-{secrets.token_hex(3)}"


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, dest: Path) -> None:
    """fsync the finished ``tmp`` folder (every file, then the folder), rename it to
    ``dest`` and fsync the parent: after a crash the folder is there whole or not at all."""
    for path in [*tmp.rglob("*"), tmp]:
        fsync_path(path)
    os.rename(tmp, dest)
    fsync_path(dest.parent)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def load_data(sdir: Path) -> IndexData:
    """A segment (or a format-1 version) back in memory, to merge it."""
    meta: dict[str, Any] = json.loads((sdir / "meta.json").read_text(encoding="utf-8"))
    offsets = np.load(sdir / "text_offsets.npy")
    blob = (sdir / "texts.bin").read_bytes()
    texts = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]
    files_path = sdir / "files.json"
    return IndexData(
        embedder=meta["embedder"],
        dim=int(meta["dim"]),
        docs=json.loads((sdir / "docs.json").read_text(encoding="utf-8")),
        texts=texts,
        anchors=json.loads((sdir / "anchors.json").read_text(encoding="utf-8")),
        dense=np.load(sdir / "dense.npy"),
        tokens=np.load(sdir / "tokens.npy"),
        token_offsets=np.load(sdir / "token_offsets.npy"),
        vocab=json.loads((sdir / "vocab.json").read_text(encoding="utf-8")),
        files=json.loads(files_path.read_text(encoding="utf-8")) if files_path.is_file() else {},
        failed=meta.get("failed", []),
    )


def write_segment(root: Path, department: str, data: IndexData, *, with_ann: bool = False) -> str:
    """Write ``data`` as ``root/segments/<name>`` (fsynced, renamed into place); its name.

    Nothing points at it yet: a crash leaves an unreferenced folder that the next
    garbage collection removes.
    """
    folder = root / SEGMENTS
    folder.mkdir(parents=True, exist_ok=True)
    name = new_name()
    tmp = folder / f".tmp-{name}"
    tmp.mkdir()
    try:
        n = len(data.texts)
        encoded = [t.encode("utf-8") for t in data.texts]
        offsets = np.zeros(n + 1, dtype=np.int64)
        if n:
            offsets[1:] = np.cumsum([len(b) for b in encoded])
        (tmp / "texts.bin").write_bytes(b"".join(encoded))
        del encoded
        np.save(tmp / "text_offsets.npy", offsets)
        chunk_doc = np.zeros(n, dtype=np.int32)
        for i, doc in enumerate(data.docs):
            chunk_doc[doc["start"] : doc["start"] + doc["count"]] = i
        np.save(tmp / "chunk_doc.npy", chunk_doc)
        dense = np.ascontiguousarray(data.dense, dtype=np.float16).reshape(n, data.dim)
        np.save(tmp / "dense.npy", dense)
        np.save(tmp / "tokens.npy", data.tokens.astype(np.int32))
        np.save(tmp / "token_offsets.npy", data.token_offsets.astype(np.int64))
        for key, obj in (("docs", data.docs), ("anchors", data.anchors), ("vocab", data.vocab)):
            (tmp / f"{key}.json").write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
        bm25 = lexical.build_bm25(
            data.tokens, data.token_offsets, len(data.vocab), {t: i for i, t in enumerate(data.vocab)}
        )
        lexical.save_bm25(bm25, tmp / "bm25")
        del bm25
        if with_ann and n:
            ann.save(ann.build(dense), tmp)
        meta = {
            "format": FORMAT,
            "version": name,
            "department": department,
            "segment": True,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "embedder": data.embedder,
            "dim": data.dim,
            "documents": len(data.docs),
            "chunks": n,
            "failed": [],
        }
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        publish(tmp, folder / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return name


def add_ann(folder: Path) -> int:
    """Give an existing segment its ANN index (a department crossed the threshold); bytes.

    The index is a pure function of the segment's vectors, so adding the file does not
    change what the segment means: written beside, fsynced, renamed into place.
    """
    tmp = folder / f".tmp-{ann.FILE}"
    try:
        ann.save(ann.build(np.load(folder / "dense.npy", mmap_mode="r")), folder, name=tmp.name)
        fsync_path(tmp)
        os.replace(tmp, folder / ann.FILE)
        fsync_path(folder)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return (folder / ann.FILE).stat().st_size


def adopt(root: Path, vdir: Path) -> str:
    """Make a version written before segments existed a segment, by hard links (no copy)."""
    folder = root / SEGMENTS
    folder.mkdir(parents=True, exist_ok=True)
    name = new_name()
    tmp = folder / f".tmp-{name}"
    try:
        shutil.copytree(vdir, tmp, copy_function=_link_or_copy)
        (tmp / "files.json").unlink(missing_ok=True)  # fingerprints belong to versions
        publish(tmp, folder / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return name


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class Segment:
    """One segment, loaded read-only (vectors, texts and postings memory-mapped).

    ``dense_in_ram`` keeps a float32 copy of the vectors (fast exact scoring); otherwise
    the float16 file stays mapped and is scored blockwise.
    """

    def __init__(self, path: Path, *, dense_in_ram: bool) -> None:
        import bm25s

        self.path = path
        self.meta: dict[str, Any] = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        self.embedder: str = self.meta["embedder"]
        self.dim = int(self.meta["dim"])
        self.docs: list[dict[str, Any]] = json.loads((path / "docs.json").read_text(encoding="utf-8"))
        self.anchors: list[str] = json.loads((path / "anchors.json").read_text(encoding="utf-8"))
        self.offsets = np.load(path / "text_offsets.npy")
        self.n = len(self.offsets) - 1
        size = int(self.offsets[-1]) if self.n else 0
        # a plain ndarray view of the map: slicing a np.memmap costs a microsecond per text
        self._texts: np.ndarray = (
            np.asarray(np.memmap(path / "texts.bin", dtype=np.uint8, mode="r"))
            if size
            else np.zeros(0, np.uint8)
        )
        self.chunk_doc = np.load(path / "chunk_doc.npy")
        dense = np.load(path / "dense.npy", mmap_mode="r")
        self.dense: np.ndarray = np.asarray(dense, dtype=np.float32) if dense_in_ram else dense
        token_offsets = np.load(path / "token_offsets.npy")
        self.lengths = np.diff(token_offsets).astype(np.float32)  # tokens per chunk (BM25 dl)
        self.bm25: Any = None
        self.indptr = np.zeros(1, dtype=np.int64)
        self.rows: np.ndarray = np.zeros(0, dtype=np.int32)  # chunk of each posting (CSC)
        self.tf: np.ndarray = np.zeros(0, dtype=np.int32)  # term frequency of each posting
        self.vocab: dict[str, int] = {}
        if self.n:
            self.bm25 = bm25s.BM25.load(str(path / "bm25"), mmap=True, show_progress=False)
            self.indptr = np.asarray(self.bm25.scores["indptr"], dtype=np.int64)
            # Plain ndarray views of the memory maps: slicing a np.memmap costs microseconds.
            self.rows = np.asarray(self.bm25.scores["indices"])
            self.tf = np.asarray(
                lexical.load_term_freqs(path / "bm25", lambda: np.load(path / "tokens.npy"), token_offsets)
            )
            self.vocab = self.bm25.vocab_dict
            if len(self.tf) != len(self.rows) or len(self.lengths) != self.n:
                raise KnowledgeError(f"The index segment {path.name} is inconsistent; rebuild it.")
        self.ann: Any = ann.load(path) if self.n else None

    def text(self, i: int) -> str:
        return bytes(self._texts[int(self.offsets[i]) : int(self.offsets[i + 1])]).decode("utf-8")

    def postings(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = int(self.indptr[tid]), int(self.indptr[tid + 1])
        return self.rows[a:b], self.tf[a:b]

    def contains(self, tid: int, local: np.ndarray) -> np.ndarray:
        """Which of the segment's chunks ``local`` contain term ``tid`` (rows are sorted)."""
        rows = self.postings(tid)[0]
        if len(rows) == 0 or len(local) == 0:
            return np.zeros(len(local), dtype=bool)
        pos = np.minimum(np.searchsorted(rows, local), len(rows) - 1)
        return np.asarray(rows[pos] == local)

    def cosines(self, qvec: np.ndarray, out: np.ndarray) -> None:
        """Cosine of every chunk with ``qvec`` into ``out`` (length ``n``)."""
        if self.dense.dtype == np.float32:
            out[:] = np.einsum("ij,j->i", self.dense, qvec)  # no BLAS threads: they cost ms to wake
            return
        for a in range(0, self.n, 16384):
            block = np.asarray(self.dense[a : a + 16384], dtype=np.float32)
            out[a : a + 16384] = np.einsum("ij,j->i", block, qvec)

    def cosines_of(self, qvec: np.ndarray, local: np.ndarray) -> np.ndarray:
        """Cosine of the chunks ``local`` only (candidates proposed by the ANN or BM25)."""
        if len(local) == 0:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(np.asarray(self.dense[local], dtype=np.float32) @ qvec, dtype=np.float32)
