"""The sensitivity label of a request, computed once and used for routing.

Label = the highest of the department's classification, the retrieved documents' labels,
the text classifier over the question *and* every history turn that goes into the prompt,
and the labels adapters recorded with earlier answers. A classifier error counts as
RESTRICTED, so a broken detector can only make routing stricter.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.config import Department
from bot.core.ports import SensitivityClassifier
from bot.core.types import Classification, SourceChunk, Turn

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
    carried = max((t.label for t in history if t.label is not None), default=Classification.PUBLIC)
    if carried > label:
        label = carried
        reasons.append("thread-history")
    return label, tuple(reasons)
