"""The labelled sensitivity corpus (tests/data/sensitivity_corpus.tsv), shared by tests and bench.

Columns: text, expected label, note. ``\\n`` in a text stands for a newline. A public row
whose note starts with ``accepted-fp:`` is a known false positive the classifier may flag
(the rest of the note says why it is accepted).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from bot.config import Department
from bot.core.types import Classification

CORPUS = Path(__file__).resolve().parents[1] / "data" / "sensitivity_corpus.tsv"

# The keywords from the issue (an HR + finance mix), exact singular forms as configured.
DEPARTMENT = Department(
    name="general",
    title="General",
    knowledge=Path("k"),
    sensitive_keywords=["investigation", "harassment complaint", "salary", "bonus"],
)


@dataclass(frozen=True)
class Row:
    line: int
    text: str
    label: Classification
    note: str

    @property
    def sensitive(self) -> bool:
        return self.label >= Classification.CONFIDENTIAL

    @property
    def accepted_fp(self) -> bool:
        return self.note.startswith("accepted-fp:")


def load(path: Path = CORPUS) -> list[Row]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [
            Row(
                line=i,
                text=r["text"].replace("\\n", "\n"),
                label=Classification.parse(r["label"]),
                note=r["note"],
            )
            for i, r in enumerate(reader, start=2)
        ]
