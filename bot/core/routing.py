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
from typing import cast

from bot.config import Company, Department
from bot.core.confidence import Assessment, assess
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

    The departments are searched in one ``retrieve_many`` call when the retriever has it
    (one tokenisation and embedding of the question); the decision is the same either way.
    """
    if len(candidates) == 1:
        dept = candidates[0]
        probe = tuple(retriever.retrieve(query, scopes[dept.name], top_k=top_k))
        return Route(dept, "only", probe=probe, assessment=assess(query, probe))
    found = retrieve_each(retriever, query, [scopes[d.name] for d in candidates], top_k=top_k)
    ranked: list[tuple[float, Department, list[SourceChunk], Assessment]] = []
    for dept, chunks in zip(candidates, found, strict=True):
        judged = assess(query, chunks)
        ranked.append((route_score(judged), dept, chunks, judged))
    ranked.sort(key=lambda r: r[0], reverse=True)
    best_score, best, chunks, judged = ranked[0]
    runner = ranked[1]
    alternative = runner[1] if best_score - runner[0] <= CLOSE_MARGIN and runner[0] > 0 else None
    searched = tuple(d.title for _, d, _, _ in ranked)
    # the margin itself is evidence for questions that ask for no particular value
    judged = assess(query, chunks, margin=round(best_score - runner[0], 4))
    return Route(
        best, "auto", alternative=alternative, probe=tuple(chunks), searched=searched, assessment=judged
    )
