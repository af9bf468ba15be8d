"""The lexical half of retrieval: one tokenizer and a BM25 (Lucene variant) matrix.

Index and query must tokenize identically, so both use :func:`tokenize` (bm25s's regex
tokenizer, English stop words, Snowball stemming via PyStemmer).

The score matrix is built here with vectorised numpy and handed to a ``bm25s.BM25``
object for scoring, saving and (memory-mapped) loading. bm25s's own builder loops over
documents in Python; because refresh keeps every unchanged chunk's token ids, a
vectorised rebuild keeps a one-file refresh a few percent of a full build instead of
re-tokenising the whole department.

Per-posting term frequencies are saved beside the matrix (``TF_FILE``) so a reader can
score BM25 at query time with statistics of only the chunks one asker may see (see
``bot/knowledge/retrieve.py``); the precomputed matrix uses whole-department statistics
and is kept so the stored format stays readable by bm25s and by older readers.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

K1 = 1.5
B = 0.75
TF_FILE = "tf.csc.index.npy"  # in the bm25/ folder, aligned with indices.csc.index.npy


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stop-word-free, stemmed tokens for each text."""
    import bm25s

    if not texts:
        return []
    out = bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)
    return [list(t) for t in out]


def idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """Lucene's BM25 idf (always positive)."""
    return np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)


def postings(flat_ids: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(token id, chunk, term frequency) of every distinct pair, in CSC order.

    ``flat_ids[offsets[i]:offsets[i+1]]`` are chunk ``i``'s token ids; pairs are sorted by
    token, then chunk, exactly as the columns of the BM25 matrix store them.
    """
    n_docs = len(offsets) - 1
    doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), np.diff(offsets))
    keys = np.asarray(flat_ids, dtype=np.int64) * max(n_docs, 1) + doc_of
    uniq, tf = np.unique(keys, return_counts=True)  # sorted by token, then chunk: CSC order
    tok = uniq // max(n_docs, 1)
    doc = (uniq % max(n_docs, 1)).astype(np.int32)
    return tok, doc, tf.astype(np.int32)


def build_bm25(flat_ids: np.ndarray, offsets: np.ndarray, n_vocab: int, vocab: dict[str, int]) -> Any:
    """A ``bm25s.BM25`` whose CSC score matrix (token × chunk) is built vectorised.

    ``flat_ids[offsets[i]:offsets[i+1]]`` are chunk ``i``'s token ids. The term
    frequencies ride along in ``scores["tf"]`` for :func:`save_bm25`.
    """
    import bm25s

    n_docs = len(offsets) - 1
    lengths = np.diff(offsets).astype(np.float32)
    tok, doc, tf = postings(flat_ids, offsets)
    df = np.bincount(tok, minlength=n_vocab)
    avgdl = float(lengths.mean()) if n_docs and lengths.sum() else 1.0
    tf32 = tf.astype(np.float32)
    denom = tf32 + K1 * (1.0 - B + B * lengths[doc] / avgdl)
    data = (idf(df, n_docs)[tok] * tf32 / denom).astype(np.float32)
    indptr = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)
    model = bm25s.BM25(k1=K1, b=B, method="lucene")
    model.scores = {"data": data, "indices": doc, "indptr": indptr, "num_docs": n_docs, "tf": tf}
    model.vocab_dict = dict(vocab)
    model.nonoccurrence_array = None
    return model


def save_bm25(model: Any, folder: Path) -> None:
    """bm25s's own files plus the term frequencies (:data:`TF_FILE`)."""
    model.save(str(folder), show_progress=False)
    np.save(folder / TF_FILE, np.asarray(model.scores["tf"], dtype=np.int32))


def load_term_freqs(folder: Path, flat_ids: Callable[[], np.ndarray], offsets: np.ndarray) -> np.ndarray:
    """Term frequencies aligned with the matrix's ``indices`` (memory-mapped when stored).

    Versions written before :data:`TF_FILE` existed derive them from the chunks' token
    ids; ``flat_ids`` is called only then (it loads ``tokens.npy``).
    """
    path = folder / TF_FILE
    if path.is_file():
        return np.load(path, mmap_mode="r")
    return postings(flat_ids(), offsets)[2]


def contains(model: Any, token_id: int, chunk_ids: np.ndarray) -> np.ndarray:
    """Which of ``chunk_ids`` contain ``token_id`` (column rows are sorted)."""
    indptr = model.scores["indptr"]
    rows = model.scores["indices"][int(indptr[token_id]) : int(indptr[token_id + 1])]
    if len(rows) == 0:
        return np.zeros(len(chunk_ids), dtype=bool)
    pos = np.searchsorted(rows, chunk_ids)
    pos = np.minimum(pos, len(rows) - 1)
    return np.asarray(rows[pos] == chunk_ids)
