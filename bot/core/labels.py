"""The sensitivity label of a request, computed once and used for routing.

Label = the highest of the department's classification, the retrieved documents' labels,
the text classifier over the question *and* every history turn that goes into the prompt,
and the labels adapters recorded with earlier answers. A classifier error counts as
RESTRICTED, so a broken detector can only make routing stricter, and so does an assistant
turn that arrives without a label: an adapter that forgets to carry the label (or a
future one that never did) cannot send a restricted answer to a cloud model as history.
Adapters build history with ``answer_turns`` so the label travels with the text.

An answer given under a department's ``route: private`` pin, or written by the private
model for any reason, is held at least CONFIDENTIAL (``held_label``): as history it then
keeps a follow-up on the private model (or sources only) whatever department the
follow-up goes to, so the private answer never reaches a cloud model. Labelling rather
than dropping such turns keeps follow-ups useful where a private model exists.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.config import Department
from bot.core.ports import SensitivityClassifier
from bot.core.types import Answer, Classification, SourceChunk, Turn

log = logging.getLogger(__name__)


class DepartmentLabel:
    """Fallback classifier: the request is as sensitive as its department."""

    def classify(self, text: str, department: Department) -> tuple[Classification, tuple[str, ...]]:
        return department.classification, ()


def request_label(
    classifier: SensitivityClassifier,
    text: str,
    dept: Department,
    chunks: Sequence[SourceChunk],
    history: Sequence[Turn] = (),
) -> tuple[Classification, tuple[str, ...]]:
    """(label, reasons); reasons are detector names, never matched text."""
    label = Classification.PUBLIC
    reasons: list[str] = []
    try:
        for part in (text, *(t.text for t in history)):
            found, why = classifier.classify(part, dept)
            label = max(label, found)
            reasons += [r for r in why if r not in reasons]
    except Exception:
        log.exception("classifier failed; treating the request as restricted")
        return Classification.RESTRICTED, ("classifier-error",)
    label = max(label, dept.classification, *(c.classification for c in chunks))
    carried = max((turn_label(t) for t in history), default=Classification.PUBLIC)
    if carried > label:
        label = carried
        reasons.append("thread-history")
    return label, tuple(reasons)


PRIVATE_ONLY = Classification.CONFIDENTIAL
"""The least label of anything a private pin or the private model produced."""


def held_label(label: Classification, *, pin: str | None, route: str = "") -> Classification:
    """The label an answer carries into history: ``label``, raised to ``PRIVATE_ONLY`` when
    the department is pinned private (whatever answered: model, extractive, sources only,
    "I don't know" naming titles) or the private model wrote it (``route == "private"``)."""
    if pin == "private" or route == "private":
        return max(label, PRIVATE_ONLY)
    return label


def turn_label(turn: Turn) -> Classification:
    """A turn's recorded label; an assistant turn without one counts as RESTRICTED."""
    if turn.label is not None:
        return turn.label
    return Classification.RESTRICTED if turn.role == "assistant" else Classification.PUBLIC


def answer_turns(question: str, answer: Answer) -> tuple[Turn, Turn]:
    """The two history turns for an exchange, the answer carrying its sensitivity label
    (stores keep the latest turns, so a question never stays without its answer)."""
    return Turn("user", question), Turn("assistant", answer.text, label=answer.classification)
