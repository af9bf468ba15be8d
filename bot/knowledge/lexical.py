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

from collections.abc import Callable, Mapping, Sequence
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


# Adjacent query terms joined into one identifier: at most this many words.
COMPOUND_SPAN = 3


def compound_forms(tokens: Sequence[str]) -> list[str]:
    """Identifiers that runs of adjacent query terms may name, in query order.

    The tokenizer keeps ``gl_account`` (a CSV header, a config key, a code identifier) as
    one token, so a question that writes "GL account" shares no term with it. For every
    run of 2..:data:`COMPOUND_SPAN` adjacent terms this lists the run joined by "_", also
    stemmed as a whole word (the index stems the whole identifier: ``receipt_required`` is
    ``receipt_requir``). Parts are the query's stems, so an identifier whose inner word
    stems differently ("owning_team" asked as "owning team") is not found.

    Not listed, on purpose: a hyphen needs no form of its own (the tokenizer splits
    "per-diem" into its words on both sides), and concatenations ("set up" → ``setup``)
    are left out because prose holds them next to the split words ("this guide sets up
    … Dev environment setup"), so the chunk that says both is counted twice and outranks
    the one that answers (bench.calibration lost a set-1 question that way); their stems
    also read other words into the join ("do" + "need" → "doneed" → ``done``).
    """
    stem = _stemmer().stemWord
    out: list[str] = []
    for n in range(2, COMPOUND_SPAN + 1):
        for i in range(len(tokens) - n + 1):
            joined = "_".join(tokens[i : i + n])
            out += [joined, stem(joined)]
    return list(dict.fromkeys(out))


def query_term_ids(tokens: Sequence[str], term_id: Callable[[str], int | None]) -> list[tuple[str, int]]:
    """The query's terms an index knows, as (term, id): its own tokens in order, then the
    identifiers (:func:`compound_forms`) the index holds as one term.

    Both retrieval paths (one department, ``retrieve.LoadedIndex.visible_terms``; every
    department in one pass, ``crosssearch.probe_across``) turn query tokens into term ids
    here, so they expand a question identically. For BM25 a found identifier is one more
    query term with its own (usually high: it is rare) idf: a chunk that holds only the
    identifier and one that holds only the separate words each match the concept once;
    only a chunk with both forms counts it twice, as if the question had said it twice.
    For term coverage it is an alternative spelling (:func:`unseen_mass`). An identifier is
    added only when the index knows it, and counts only when a chunk the asker may see
    holds it (:func:`unseen_mass`), so a question without one scores exactly as before
    and an identifier that only a restricted chunk holds changes nothing an outsider sees.
    """
    known = [(t, tid) for t in tokens if (tid := term_id(t)) is not None]
    taken = set(tokens)
    for form in compound_forms(tokens):
        if form not in taken and (tid := term_id(form)) is not None:
            known.append((form, tid))
            taken.add(form)
    return known


def unseen_mass(
    tokens: Sequence[str],
    known: Sequence[tuple[str, int]],
    visible: Mapping[int, float],
    unseen_idf: float | np.floating[Any],
) -> float:
    """The "unseen" term of coverage's denominator (``sum(visible.values()) + unseen``).

    ``visible`` maps the ids of the terms some chunk the asker may see holds to their idf;
    ``unseen_idf`` is the idf of a term no visible chunk holds. The query's own tokens
    outside ``visible`` count with that idf (unknown and unseen words are alike). An added
    identifier (:func:`query_term_ids`) is an alternative spelling of words already
    counted, not one more thing the question asks for: its weight is taken back out of
    the denominator, so a chunk that holds the identifier gains its weight and a chunk
    that holds only the separate words keeps the coverage it had (a chunk with both forms
    may exceed 1; the calibrated score is clipped). An identifier no visible chunk holds
    is not in ``visible`` and changes nothing.
    """
    own = set(tokens)
    held = sum(1 for word, tid in known if word in own and tid in visible)
    added = sum(visible[tid] for word, tid in known if word not in own and tid in visible)
    # the product in the idf's own precision (float32 from :func:`idf`), as before identifiers
    base = float((len(tokens) - held) * unseen_idf)
    return base - added if added else base


def bm25_part(idf: np.ndarray, tf: np.ndarray, dl: np.ndarray, avgdl: Any) -> np.ndarray:
    """Each posting's BM25 contribution, ``idf·tf / (tf + K1·(1 − B + B·dl/avgdl))`` in
    float32: the one formula a named search and the cross-department pass both use, so
    their scores agree bit for bit by construction (``avgdl``: a scalar or per posting)."""
    norm = np.float32(K1) * (np.float32(1.0 - B) + np.float32(B) * dl / avgdl)
    return idf * tf / (tf + norm)


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


def all_terms_rank(bm25: np.ndarray, held: np.ndarray, required: np.ndarray | int, top: Any) -> np.ndarray:
    """The lexical list's ranking score: BM25, with every chunk that holds all the
    query's required terms ranked above every chunk that does not.

    BM25 sums per-term weights, so a chunk that repeats one rare word can outscore the
    one that holds every word the question asks about; PostgreSQL's websearch (all terms
    required) lifted the handbook hybrid by 0.04 in bench.pg_fulltext. Here such chunks
    are not the only ones kept, they lead: ``top`` (the scope's largest BM25, so
    per chunk it is the chunk's department's) is added to their BM25, which keeps their
    order among themselves and puts them ahead in the candidate list and in min-max
    fusion. ``held`` counts the query's own terms (not compound forms) each chunk holds;
    ``required`` is how many of them some visible chunk holds (per chunk here, too). A
    term no visible chunk holds is not required (a typo or a word only a restricted page
    has changes nothing), and one required term is plain BM25 already, so it takes two.
    ``Hit.bm25`` stays the plain BM25; only ranking and fusion read this score.
    Applied only with ``[retrieval] all_terms_first`` (on by default; off to compare with
    plain BM25 order: ``LoadedIndex``/``IndexReader`` take it, ``bench.calibration`` and
    ``bench.northwind`` have ``--all-terms off``).
    """
    full = (held >= required) & (np.asarray(required) >= 2) & (bm25 > 0)
    if not full.any():
        return bm25
    return np.where(full, bm25 + top, bm25).astype(np.float32)
