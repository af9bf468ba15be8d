"""Knowledge gaps: the questions a department could not answer well, grouped.

Which rows: "don't know", low confidence (sources only, or an answer whose confidence is
under the department's ``dont_know_below``) and answers someone voted 👎, newest first,
at most ``MAX_ROWS`` of them (the page is about the most frequent gaps; a cap keeps the
work bounded whatever the traffic).

How they are grouped, cheaply and deterministically (same rows → same groups):

- with ``show_text`` the sealed question is opened and questions are grouped by lexical
  similarity: stemmed, stop-word-free terms weighted by IDF over the rows, a greedy
  single pass that joins a question to the most similar group (cosine ≥ ``SIMILAR``)
  found through a term → group index (so the pass is near-linear, not rows × groups);
- without it the text is never opened (the department did not let its admins read
  questions): rows are grouped by the documents their answers cited, and rows with
  neither text nor documents become one count. Text gone to retention or a privacy erase
  is treated the same way, so an erased person's question never comes back here.

Closest documents come from the department's own retriever under an admin-level scope:
only documents EVERY admin of the department may read (``admin_scope``), so a title on
the page never exposes a document to an admin who could not open it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from bot.admin.auditread import ASKED_R, Reader, parse_time
from bot.admin.reports import ClosestDoc, DocRef, GapGroup
from bot.core.types import AccessScope, Principal, Signature, SourceChunk

log = logging.getLogger(__name__)

MAX_ROWS = 2000  # newest gap rows looked at per call
MAX_GROUPS = 30  # groups returned (closest documents are retrieved for each)
SIMILAR = 0.35  # cosine of IDF-weighted term sets to join a group
MIN_HIDDEN_GROUP = 2  # hidden text: smaller groups are folded into "other"
EXAMPLES = 5
TERMS = 5
CLOSEST = 3
REQUEST_IDS = 20
NO_DOCUMENT = "(no close document)"
RESTRICTED = "(documents not every admin may read)"
NO_TEXT = "Questions not shown (admins_see_questions is off) with no cited document"
OTHER = "Other questions (fewer than {n} alike each)"
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)


@dataclass(frozen=True)
class GapRow:
    """One audit row that is a gap. ``text`` is the opened question (None: hidden, purged
    or erased); it lives only inside this module's functions."""

    request_id: str
    time: datetime
    dont_know: bool
    low_confidence: bool
    down: bool
    doc_ids: tuple[str, ...]
    text: str | None = field(default=None, repr=False)


Opener = Callable[[str, str, Any], str | None]
"""(user, request id, sealed blob) → the question, or None when it cannot be opened."""


def load_rows(
    audit: Reader | None,
    department: str,
    since: str,
    low_below: float,
    *,
    opener: Opener | None,
    limit: int = MAX_ROWS,
) -> list[GapRow]:
    """The newest gap rows of ONE department; text opened only when ``opener`` is given."""
    if audit is None or not audit.has_table("requests"):
        return []
    has_feedback = audit.has_table("feedback")
    has_text = opener is not None and audit.has_table("request_text")
    down = (
        "exists (select 1 from feedback f where f.request_id = r.request_id and f.value = 'down')"
        if has_feedback
        else "0"
    )
    blob = "(select t.question from request_text t where t.request_id = r.request_id)" if has_text else "null"
    rows = audit.execute(
        f"select r.request_id, r.time, r.status, r.confidence, r.doc_ids, r.user, {down}, {blob} "
        f"from requests r where r.department = ? and r.time >= ? and {ASKED_R} "
        "and ("
        "r.status in ('dont_know', 'sources_only') or (r.status = 'answered' and r.confidence < ?)"
        + (
            " or r.request_id in (select request_id from feedback where value = 'down')"
            if has_feedback
            else ""
        )
        + ") order by r.time desc, r.request_id limit ?",
        [department, since, low_below, limit],
    )
    out = []
    for rid, t, status, conf, doc_ids, user, is_down, sealed in rows:
        when = parse_time(t)
        if when is None:
            continue
        text = (
            opener(str(user or ""), str(rid), sealed) if opener is not None and sealed is not None else None
        )
        out.append(
            GapRow(
                request_id=str(rid),
                time=when,
                dont_know=status == "dont_know",
                low_confidence=status == "sources_only"
                or (status == "answered" and float(conf or 0.0) < low_below),
                down=bool(is_down),
                doc_ids=doc_ids_of(doc_ids),
                text=text,
            )
        )
    return out


def doc_ids_of(value: object) -> tuple[str, ...]:
    try:
        ids = json.loads(str(value or "[]"))
    except ValueError:
        return ()
    return tuple(str(i) for i in ids) if isinstance(ids, list) else ()


# ── terms ────────────────────────────────────────────────────────────────────────────


QUESTION_WORDS = frozenset(
    {"get", "need", "much", "many", "per", "please", "tell", "know", "anyone", "hi", "hello"}
)
"""Words of asking, not of the topic: left out so "how many …" questions do not group."""


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return frozenset(STOPWORDS_EN_PLUS) | QUESTION_WORDS


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def terms_of(text: str) -> list[tuple[str, str]]:
    """(stem, word) pairs of a question: lower-cased, stop words and 1-letter words out."""
    stop = _stop_words()
    words = [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in stop]
    stems = _stemmer().stemWords(words) if words else []
    return list(zip(stems, words, strict=True))


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


# ── grouping ─────────────────────────────────────────────────────────────────────────


@dataclass
class Cluster:
    rows: list[GapRow] = field(default_factory=list)
    basis: str = "questions"
    weights: dict[str, float] = field(default_factory=dict)  # summed unit vectors
    doc_ids: tuple[str, ...] = ()

    def norm(self) -> float:
        return math.sqrt(sum(v * v for v in self.weights.values()))


def group_by_text(rows: Sequence[GapRow]) -> tuple[list[Cluster], list[GapRow]]:
    """Clusters of rows with text; the rows without text are returned apart."""
    texted = [r for r in rows if r.text]
    rest = [r for r in rows if not r.text]
    # oldest first, so a group's first member (its seed) is stable as new rows arrive
    texted.sort(key=lambda r: (r.time, r.request_id))
    stems = [dict.fromkeys(s for s, _ in terms_of(r.text or "")) for r in texted]
    df: Counter[str] = Counter(s for row in stems for s in row)
    n = max(1, len(texted))
    clusters: list[Cluster] = []
    by_term: dict[str, list[int]] = {}
    for row, row_stems in zip(texted, stems, strict=True):
        vec = {s: math.log(1 + n / df[s]) for s in row_stems}
        size = math.sqrt(sum(v * v for v in vec.values()))
        if size == 0:
            clusters.append(Cluster(rows=[row]))  # only stop words: a group of its own text
            continue
        unit = {s: v / size for s, v in vec.items()}
        best, best_sim = -1, 0.0
        for c in sorted({i for s in unit for i in by_term.get(s, ())}):
            cl = clusters[c]
            sim = sum(w * cl.weights.get(s, 0.0) for s, w in unit.items()) / (cl.norm() or 1.0)
            if sim > best_sim + 1e-12:
                best, best_sim = c, sim
        if best >= 0 and best_sim >= SIMILAR:
            target = clusters[best]
        else:
            target = Cluster()
            clusters.append(target)
            best = len(clusters) - 1
        target.rows.append(row)
        for s, w in unit.items():
            if s not in target.weights:
                by_term.setdefault(s, []).append(best)
            target.weights[s] = target.weights.get(s, 0.0) + w
    return clusters, rest


def group_by_sources(rows: Sequence[GapRow]) -> list[Cluster]:
    """Rows grouped by the documents their answers cited (the first cited document — the
    one the answer leaned on most); rows citing nothing become one "none" cluster."""
    by_doc: dict[str, Cluster] = {}
    none = Cluster(basis="none")
    for row in sorted(rows, key=lambda r: (r.time, r.request_id)):
        if not row.doc_ids:
            none.rows.append(row)
            continue
        c = by_doc.setdefault(row.doc_ids[0], Cluster(basis="sources"))
        c.rows.append(row)
    out = list(by_doc.values())
    for c in out:
        counts = Counter(d for r in c.rows for d in dict.fromkeys(r.doc_ids))
        c.doc_ids = tuple(d for d, _ in sorted(counts.items(), key=lambda t: (-t[1], t[0])))[:CLOSEST]
    return out + ([none] if none.rows else [])


def order(clusters: Iterable[Cluster]) -> list[Cluster]:
    """Biggest first, then most recent, then a stable key (deterministic output)."""
    return sorted(
        clusters, key=lambda c: (-len(c.rows), -max(r.time for r in c.rows).timestamp(), _key(c.rows))
    )


def _key(rows: Iterable[GapRow]) -> str:
    digest = hashlib.sha256("\n".join(sorted(r.request_id for r in rows)).encode()).hexdigest()
    return "g" + digest[:12]


# ── scope and closest documents ──────────────────────────────────────────────────────


Readable = Callable[[Signature], bool]
"""Whether EVERY admin of the department may read a document with these audiences."""


def admin_reader(admins: Sequence[Principal | None]) -> tuple[frozenset[str], Readable]:
    """The access keys to search with (all admins' keys together, so the retriever finds
    anything one of them may read) and the check that keeps only what every one of them
    may read. No known admin, or one that cannot be resolved (a wildcard admin entry, an
    unknown person): only documents without an audience of their own — fail closed."""
    known = [p for p in admins if p is not None]
    if not known or len(known) != len(admins):
        return frozenset({"*"}), lambda audiences: not audiences
    keys = frozenset().union(*(p.keys for p in known))
    scopes = [AccessScope(department="", keys=p.keys) for p in known]
    return keys, lambda audiences: all(s.admits(audiences) for s in scopes)


def admin_scope(
    department: str, admins: Sequence[Principal | None]
) -> tuple[AccessScope, Callable[[SourceChunk], bool]]:
    """The scope to retrieve closest documents with, and the check every result must pass:
    a chunk of THIS department that every admin may read (``admin_reader``)."""
    keys, readable = admin_reader(admins)
    return AccessScope(
        department=department, keys=keys
    ), lambda c: c.department == department and readable(c.audiences)


Retrieve = Callable[[str, AccessScope, int], list[SourceChunk]]


def closest_for(
    query: str,
    retrieve: Retrieve,
    scope: AccessScope,
    admits: Callable[[SourceChunk], bool],
    ref: Callable[[str, str, str], DocRef],
) -> tuple[ClosestDoc, ...]:
    try:
        chunks = retrieve(query, scope, CLOSEST * 4)
    except Exception:  # a broken index must not take the page down; the group still shows
        log.warning("closest documents for a gap group could not be retrieved", exc_info=True)
        return ()
    out: dict[str, ClosestDoc] = {}
    for c in chunks:
        if c.score <= 0 or not admits(c) or c.doc_id in out:
            continue
        out[c.doc_id] = ClosestDoc(doc=ref(c.doc_id, c.title, c.path), score=round(float(c.score), 3))
        if len(out) == CLOSEST:
            break
    return tuple(out.values())


# ── assembling the groups ────────────────────────────────────────────────────────────


def build_groups(
    rows: Sequence[GapRow],
    *,
    show_text: bool,
    closest: Callable[[str], tuple[ClosestDoc, ...]],
    doc_ref: Callable[[str], DocRef | None],
    limit: int = MAX_GROUPS,
) -> list[GapGroup]:
    """``rows`` must carry text only when ``show_text`` (the loader's ``opener`` decides)."""
    if show_text:
        clusters, rest = group_by_text(rows)
        clusters += group_by_sources(rest)
    else:
        clusters = group_by_sources([r if r.text is None else _without_text(r) for r in rows])
    clusters = order(clusters)
    if not show_text:
        clusters = _fold_small(clusters)
    out = []
    for c in clusters[:limit]:
        out.append(_group(c, show_text=show_text, closest=closest, doc_ref=doc_ref))
    return out


def _without_text(row: GapRow) -> GapRow:
    return GapRow(row.request_id, row.time, row.dont_know, row.low_confidence, row.down, row.doc_ids)


def _fold_small(clusters: list[Cluster]) -> list[Cluster]:
    """Hidden text: a group of one question with a document title and a time can point at
    one person's question; fold groups under ``MIN_HIDDEN_GROUP`` into one "other" (last)."""
    keep = [c for c in clusters if len(c.rows) >= MIN_HIDDEN_GROUP]
    small = [r for c in clusters if len(c.rows) < MIN_HIDDEN_GROUP for r in c.rows]
    return keep + ([Cluster(rows=small, basis="other")] if small else [])


def _day(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _group(
    c: Cluster,
    *,
    show_text: bool,
    closest: Callable[[str], tuple[ClosestDoc, ...]],
    doc_ref: Callable[[str], DocRef | None],
) -> GapGroup:
    rows = c.rows
    first = min(r.time for r in rows)
    last = max(r.time for r in rows)
    examples: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()
    near: tuple[ClosestDoc, ...] = ()
    if c.basis == "questions":
        texts = Counter(normalize(r.text or "") for r in rows)
        firsts: dict[str, str] = {}
        for r in rows:
            firsts.setdefault(normalize(r.text or ""), (r.text or "").strip())
        ranked = sorted(texts.items(), key=lambda t: (-t[1], t[0]))
        examples = tuple(firsts[t] for t, _ in ranked[:EXAMPLES])
        terms = _top_terms(c)
        near = closest(examples[0]) if examples else ()
    elif c.basis == "sources":
        n = len(rows)
        for d in c.doc_ids:
            ref = doc_ref(d)
            if ref is not None:
                share = sum(1 for r in rows if d in r.doc_ids) / n
                near += (ClosestDoc(doc=ref, score=round(share, 3)),)
    if c.basis == "questions" and show_text:
        topic = ", ".join(terms) or (examples[0] if examples else NO_DOCUMENT)
    elif c.basis == "other":
        topic = OTHER.format(n=MIN_HIDDEN_GROUP)
    elif c.basis == "none":
        topic = (
            NO_TEXT if not show_text else "Questions no longer kept (retention or erasure), no cited document"
        )
    else:
        topic = "; ".join(d.doc.title for d in near) or (RESTRICTED if c.doc_ids else NO_DOCUMENT)
    newest = sorted(rows, key=lambda r: (r.time, r.request_id), reverse=True)
    return GapGroup(
        key=_key(rows),
        count=len(rows),
        dont_know=sum(r.dont_know for r in rows),
        low_confidence=sum(r.low_confidence for r in rows),
        down=sum(r.down for r in rows),
        first_seen=first if show_text else _day(first),
        last_seen=last if show_text else _day(last),
        topic=topic,
        closest=near,
        basis=c.basis,
        request_ids=tuple(r.request_id for r in newest[:REQUEST_IDS]) if show_text else (),
        examples=examples if show_text else (),
        terms=terms if show_text else (),
    )


def _top_terms(c: Cluster) -> tuple[str, ...]:
    """The group's heaviest stems, each shown as the word most often written for it."""
    surface: dict[str, Counter[str]] = {}
    for r in c.rows:
        for stem, word in terms_of(r.text or ""):
            surface.setdefault(stem, Counter())[word] += 1
    ranked = sorted(c.weights.items(), key=lambda t: (-round(t[1], 9), t[0]))[:TERMS]
    return tuple(
        sorted(surface[s].items(), key=lambda t: (-t[1], t[0]))[0][0] for s, _ in ranked if s in surface
    )
