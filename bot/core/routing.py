"""Pick the department a question goes to.

Order of precedence: an explicit department, the department owning a template, a channel
mapping, then the best match among the departments the asker may ask. "Best match" uses
the retriever's calibrated scores with the asker's own scope, so a department the person
cannot see never influences the choice, and its documents never leave retrieval.

Departments are ranked by the mean of the retrieval score ("the topic is here") and the
answer-level confidence of ``bot.core.confidence`` ("the answer is here"). Either alone
misroutes: retrieval alone sends "how much does the company put into my pension?" to the
department whose page mentions contributions most, confidence alone lets a department with
any number next to a shared word win. The mean routes more of both natural question sets
to the right department than either (``python -m bench.calibration`` prints the rates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from bot.config import Company, Department
from bot.core.confidence import FOUND_BOOST, Assessment, assess, may_raise
from bot.core.ports import MultiRetriever, Retriever
from bot.core.types import AccessScope, Message, SourceChunk
from bot.errors import KnowledgeError, UsageError

CLOSE_MARGIN = 0.05  # two departments within this score are "close": the answer names both


@dataclass(frozen=True)
class Route:
    department: Department
    how: str  # explicit | template | channel | auto | only
    alternative: Department | None = None  # a close runner-up (auto only)
    probe: tuple[SourceChunk, ...] = ()  # chunks already retrieved while choosing
    searched: tuple[str, ...] = ()  # titles of every department compared (auto only)
    assessment: Assessment | None = None  # answer-level confidence of ``probe`` (auto only)


def route_score(assessment: Assessment) -> float:
    """What departments are ranked by: topic evidence and answer evidence, equally."""
    return (assessment.retrieval + assessment.score) / 2


def template_owner(company: Company, template: str, department: str | None) -> Department:
    """The department whose template this is; ambiguous names need --department."""
    if department is not None:
        dept = company.department(department)
        if template not in dept.templates:
            raise UsageError(f"{dept.title} has no template {template!r}.")
        return dept
    owners = [d for d in company if template in d.templates]
    if not owners:
        raise UsageError(f"No department has a template {template!r}.")
    if len(owners) > 1:
        names = ", ".join(d.name for d in owners)
        raise UsageError(f"Template {template!r} exists in {names}; choose one with --department.")
    return owners[0]


def channel_department(company: Company, platform: str, channel: str | None) -> Department | None:
    if channel is None:
        return None
    for dept in company:
        chans = (
            dept.channels.slack if platform == "slack" else dept.channels.teams if platform == "teams" else []
        )
        if channel in chans:
            return dept
    return None


def explicit_route(company: Company, message: Message) -> Route | None:
    """A route that needs no retrieval, or None when the choice is automatic."""
    if message.template:
        return Route(template_owner(company, message.template, message.department), "template")
    if message.department:
        return Route(company.department(message.department), "explicit")
    dept = channel_department(company, message.platform, message.channel)
    if dept is not None:
        return Route(dept, "channel")
    return None


def retrieve_each(
    retriever: Retriever, query: str, scopes: Sequence[AccessScope], *, top_k: int
) -> list[list[SourceChunk]]:
    """``retrieve`` for each scope, in one pass when the retriever offers ``retrieve_many``."""
    many = getattr(retriever, "retrieve_many", None)
    if many is None:
        return [retriever.retrieve(query, scope, top_k=top_k) for scope in scopes]
    found = cast(MultiRetriever, retriever).retrieve_many(query, scopes, top_k=top_k)
    if len(found) != len(scopes):
        raise KnowledgeError("retrieve_many returned a different number of lists than scopes.")
    return found


class Probed(Protocol):
    """One department's retrieval: its best chunk score now, the chunks on demand. A probe
    may also say ``unavailable = True``: the department could not be searched (the embedder
    its index was built with cannot load) and is left out of the comparison."""

    @property
    def best(self) -> float: ...

    def chunks(self) -> list[SourceChunk]: ...


@dataclass(frozen=True)
class _Retrieved:
    found: list[SourceChunk]

    @property
    def best(self) -> float:
        return max((c.score for c in self.found), default=0.0)

    def chunks(self) -> list[SourceChunk]:
        return self.found


def probe_each(
    retriever: Retriever, query: str, scopes: Sequence[AccessScope], *, top_k: int
) -> list[Probed]:
    """``retrieve_each``, with chunks built only when asked for when the retriever offers
    ``probe_many`` (``bot.knowledge.retrieve.IndexReader.probe_many``)."""
    probe = getattr(retriever, "probe_many", None)
    if probe is None:
        return [_Retrieved(found) for found in retrieve_each(retriever, query, scopes, top_k=top_k)]
    probes = list(probe(query, scopes, top_k=top_k))
    if len(probes) != len(scopes):
        raise KnowledgeError("probe_many returned a different number of results than scopes.")
    return probes


def score_bound(retrieval: float, *, typed: bool) -> float:
    """The highest ``route_score`` a department whose best passage scores ``retrieval`` can get.

    ``assess`` (without a margin) only lowers the retrieval score, except by at most
    ``FOUND_BOOST``, and only for a question ``confidence.may_raise`` admits (``typed``);
    rounding is monotone, so the bound holds for the rounded values ``route_score`` adds.
    """
    r = round(retrieval, 4)
    top = round(min(1.0, r + (1.0 - r) * FOUND_BOOST), 4) if typed else r
    return (r + top) / 2


def best_department(
    query: str,
    candidates: Sequence[Department],
    scopes: dict[str, AccessScope],
    retriever: Retriever,
    *,
    top_k: int,
) -> Route:
    """Retrieve in every askable department and keep the one whose passages best
    carry the topic and the answer (``route_score``).

    The departments are searched in one ``retrieve_many`` (or ``probe_many``) call when the
    retriever has it (one tokenisation and embedding of the question); the decision is the
    same either way. Answer-level confidence is computed in order of retrieval score and
    stops once no remaining department can reach the runner-up's route score
    (``score_bound``): the winner, the runner-up and the margin are those of assessing all.

    A department the retriever could not search (``unavailable``, see ``Probed``) is left
    out: it is neither chosen nor named among those searched.
    """
    if len(candidates) == 1:
        dept = candidates[0]
        probe = tuple(retriever.retrieve(query, scopes[dept.name], top_k=top_k))
        return Route(dept, "only", probe=probe, assessment=assess(query, probe))
    probes = probe_each(retriever, query, [scopes[d.name] for d in candidates], top_k=top_k)
    usable = [i for i, p in enumerate(probes) if not getattr(p, "unavailable", False)]
    if len(usable) < len(candidates):
        if not usable:  # the retriever refuses instead; never route to a department not searched
            raise KnowledgeError("No department could be searched for this question.")
        candidates, probes = [candidates[i] for i in usable], [probes[i] for i in usable]
        if len(candidates) == 1:
            chunks = probes[0].chunks()
            searched: tuple[str, ...] = (candidates[0].title,)
            return Route(
                candidates[0],
                "auto",
                probe=tuple(chunks),
                searched=searched,
                assessment=assess(query, chunks),
            )
    typed = may_raise(query)
    bests = [p.best for p in probes]
    by_retrieval = sorted(range(len(candidates)), key=lambda i: bests[i], reverse=True)
    judged: dict[int, tuple[float, list[SourceChunk], Assessment]] = {}
    top2: list[float] = []  # the two highest route scores so far, highest first
    for i in by_retrieval:
        if len(top2) == 2 and score_bound(bests[i], typed=typed) < top2[1]:
            break  # neither this department nor any after it can be first or second
        chunks = probes[i].chunks()
        assessment = assess(query, chunks)
        score = route_score(assessment)
        judged[i] = (score, chunks, assessment)
        top2 = sorted([*top2, score], reverse=True)[:2]
    # ties keep the candidates' order, as a stable sort of every department would
    ranked = sorted(judged, key=lambda i: (-judged[i][0], i))
    best_score, chunks, _ = judged[ranked[0]]
    best = candidates[ranked[0]]
    runner_score = judged[ranked[1]][0]
    runner = candidates[ranked[1]]
    alternative = runner if best_score - runner_score <= CLOSE_MARGIN and runner_score > 0 else None
    # departments not assessed follow, by retrieval score
    searched = tuple(candidates[i].title for i in [*ranked, *(i for i in by_retrieval if i not in judged)])
    # the margin itself is evidence for questions that ask for no particular value
    judged_best = assess(query, chunks, margin=round(best_score - runner_score, 4))
    return Route(
        best, "auto", alternative=alternative, probe=tuple(chunks), searched=searched, assessment=judged_best
    )
