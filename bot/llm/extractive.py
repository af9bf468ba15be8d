"""The offline generator: whole units of the sources, quoted (``bot.llm.extract``).

It needs no network and no key, so the product works on a laptop out of the box and stays
the last resort when every model is unavailable. It used to stitch the best-scoring
sentences together, which misread tables (a row read as prose, the wrong range picked) and
cut lists off after their intro; it now quotes the best section's paragraph, list or table
whole (a table's matching rows with its header) under "From <document> › <section> [n]",
and reports on the ``Generation`` which units it quoted.
"""

from __future__ import annotations

from bot.core.ports import DeltaFn
from bot.core.types import Generation, GenerationRequest
from bot.llm.extract import compose as _compose
from bot.llm.extract.select import candidates
from bot.llm.extract.text import terms as terms


class ExtractiveGenerator:
    """A ``Generator`` that quotes; cheap, deterministic and always available."""

    name = "extractive"

    def __init__(self, *, max_units: int = _compose.MAX_UNITS) -> None:
        self._max_units = max_units

    def generate(self, request: GenerationRequest, *, on_delta: DeltaFn | None = None) -> Generation:
        # Not a streamer: the whole answer is ready at once, so ``on_delta`` is not called
        # (an adapter would otherwise post a placeholder and update it a moment later).
        chosen = self._choose(request)
        text = self._text(request, chosen)
        return Generation(
            text=text,
            model="extractive",
            generator=self.name,
            route="local",
            quoted=_compose.quoted(chosen, request.sources) if text else (),
        )

    def compose(self, request: GenerationRequest) -> str:
        """The answer text alone (benches and tests)."""
        return self._text(request, self._choose(request))

    def _choose(self, request: GenerationRequest) -> list[_compose.Scored]:
        if not request.sources:
            return []
        return _compose.choose(candidates(request.question, request.sources))[: self._max_units]

    @staticmethod
    def _text(request: GenerationRequest, chosen: list[_compose.Scored]) -> str:
        if not chosen:
            return ""
        body = _compose.compose(chosen, request.sources)
        if request.task.startswith("template:"):
            return f"Here is what the {request.department_title} knowledge says for this task:\n\n{body}"
        return body
