"""The offline generator: an answer composed of the sources' most relevant sentences.

It needs no network and no key, so the product works on a laptop out of the box and stays
the last resort when every model is unavailable. Sentences are scored against the
question (idf-weighted stemmed term overlap, a bonus for numbers when the question asks
"how many/much/long"), near-duplicates are dropped, and the winners are put back in
reading order, each followed by the ``[n]`` of its source, so the result reads as an
answer rather than a dump of chunks.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import Stemmer

from bot.core.ports import DeltaFn
from bot.core.types import Generation, GenerationRequest

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    get got had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    much many please tell know need want
    """.split()  # noqa: SIM905 - a word list reads better as text
)
QUANTITY_RE = re.compile(r"\b(how (many|much|long|often|far)|when|what (date|time|day))\b", re.I)
NUMBER_RE = re.compile(r"\d")
TOKEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
SENT_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n{2,}|\n(?=\s*(?:[-*+]|\d+[.)])\s)")
MARKDOWN_NOISE_RE = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)|[*_`]{1,3}")
MAX_SENTENCES = 4
MAX_WORDS = 110

_stemmer = Stemmer.Stemmer("english")


def terms(text: str) -> list[str]:
    words = [w.lower() for w in TOKEN_RE.findall(text)]
    return _stemmer.stemWords([w for w in words if w not in STOPWORDS and len(w) > 1])


@dataclass(frozen=True)
class _Candidate:
    source: int  # 1-based source number
    position: int  # order inside the source
    text: str
    score: float


def _clean(sentence: str) -> str:
    lines = [MARKDOWN_NOISE_RE.sub("", line).strip() for line in sentence.splitlines()]
    text = " ".join(line for line in lines if line)
    text = re.sub(r"\s{2,}", " ", text).strip(" -:;")
    return text


_LIST_RE = re.compile(r"^([-*+]|\d+[.)])\s")
HEADING_RE = re.compile(r"^\s*(#{1,6}\s|[=-]{3,}\s*$)")


def _sentences(text: str) -> list[str]:
    # Headings, and short lines without closing punctuation (PDF running headers, titles),
    # are anchors rather than sentences: they become paragraph breaks.
    lines: list[str] = []
    header: list[str] = []
    for line in text.splitlines():
        bare = line.strip()
        if bare.startswith("|"):  # a Markdown table row reads as "Header: cell; Header: cell."
            cells = [c.strip() for c in bare.strip("|").split("|")]
            if all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                lines.append("")
            elif not header:
                header = cells
            else:
                pairs = [f"{h}: {c}" if h else c for h, c in zip(header, cells, strict=False) if c]
                lines += ["", "; ".join(pairs) + ".", ""]
            continue
        header = []
        if HEADING_RE.match(line) or (
            bare and len(bare) < 70 and bare[-1] not in ".!?:;," and not _LIST_RE.match(bare)
        ):
            lines.append("")
        else:
            lines.append(line)
    out: list[str] = []
    for raw in SENT_SPLIT_RE.split("\n".join(lines)):
        s = _clean(raw)
        words = s.split()
        if len(words) < 4 or len(words) > 80:
            continue
        if not re.search(r"[a-z]", s):
            continue
        out.append(s if s[-1] in ".!?:" else s + ".")
    return out


def _cite(sentence: str, n: int) -> str:
    """Put the marker before the closing punctuation: "… per year [1]." reads naturally."""
    if sentence[-1] in ".!?":
        return f"{sentence[:-1]} [{n}]{sentence[-1]}"
    return f"{sentence} [{n}]"


class ExtractiveGenerator:
    """A ``Generator`` that quotes; cheap, deterministic and always available."""

    name = "extractive"

    def __init__(self, *, max_sentences: int = MAX_SENTENCES, max_words: int = MAX_WORDS) -> None:
        self._max_sentences = max_sentences
        self._max_words = max_words

    def generate(self, request: GenerationRequest, *, on_delta: DeltaFn | None = None) -> Generation:
        # Not a streamer: the whole answer is ready at once, so ``on_delta`` is not called
        # (an adapter would otherwise post a placeholder and update it a moment later).
        text = self.compose(request)
        return Generation(text=text, model="extractive", generator=self.name, route="local")

    def compose(self, request: GenerationRequest) -> str:
        q_terms = terms(request.question)
        if not q_terms or not request.sources:
            return ""
        candidates = self._candidates(request, q_terms)
        chosen = self._choose(candidates)
        if not chosen:
            return ""
        chosen.sort(key=lambda c: (c.source, c.position))
        body = " ".join(_cite(c.text, c.source) for c in chosen)
        if request.task.startswith("template:"):
            return f"Here is what the {request.department_title} knowledge says for this task: {body}"
        return body

    def _candidates(self, request: GenerationRequest, q_terms: list[str]) -> list[_Candidate]:
        per_source = [_sentences(s.text) for s in request.sources]
        doc_freq: Counter[str] = Counter()
        all_sents = [sent for sents in per_source for sent in sents]
        term_sets = {sent: set(terms(sent)) for sent in all_sents}
        for ts in term_sets.values():
            doc_freq.update(ts)
        n = max(1, len(all_sents))
        q_set = set(q_terms)
        idf = {t: math.log(1 + n / (1 + doc_freq[t])) + 0.5 for t in q_set}
        total_idf = sum(idf.values()) or 1.0
        wants_quantity = bool(QUANTITY_RE.search(request.question))
        out: list[_Candidate] = []
        for i, sents in enumerate(per_source, start=1):
            rank_weight = 1.0 / (1 + 0.15 * (i - 1))  # earlier sources are more relevant
            for pos, sent in enumerate(sents):
                overlap = term_sets[sent] & q_set
                if not overlap:
                    continue
                score = sum(idf[t] for t in overlap) / total_idf
                if wants_quantity and NUMBER_RE.search(sent):
                    score *= 1.3
                score *= rank_weight
                # Short fragments and very long sentences read badly as answers.
                words = len(sent.split())
                score *= 1.0 if 6 <= words <= 45 else 0.8
                out.append(_Candidate(i, pos, sent, score))
        return out

    def _choose(self, candidates: list[_Candidate]) -> list[_Candidate]:
        if not candidates:
            return []
        ranked = sorted(candidates, key=lambda c: c.score, reverse=True)
        best = ranked[0].score
        chosen: list[_Candidate] = []
        words = 0
        seen_terms: list[set[str]] = []
        for cand in ranked:
            if len(chosen) >= self._max_sentences or cand.score < best * 0.45:
                break
            cand_terms = set(terms(cand.text))
            if any(len(cand_terms & s) / max(1, min(len(cand_terms), len(s))) > 0.7 for s in seen_terms):
                continue  # near-duplicate of a chosen sentence
            n_words = len(cand.text.split())
            if chosen and words + n_words > self._max_words:
                continue
            chosen.append(cand)
            seen_terms.append(cand_terms)
            words += n_words
        return chosen
