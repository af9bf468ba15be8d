"""Fakes for the core's ports, shaped exactly like the real implementations.

Tests swap ports for these instead of patching import paths. ``FakeRetriever`` honours
the access scope inside its "query" like the real one, so canary tests through it are
meaningful; ``make_company`` writes a tiny company (with a restricted folder and a
canary string in every department) into a temporary folder.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bot.config import Company, Department, load_company
from bot.core.ports import AuditEntry, IndexReport, IndexStatus, ProgressFn
from bot.core.types import AccessScope, Classification, SourceChunk
from bot.llm.extractive import terms

CANARIES = {
    "hr": "CANARY-HR-5b1e",
    "finance": "CANARY-FIN-77c2",
    "payroll": "CANARY-PAYROLL-9d04",
    "eng": "CANARY-ENG-3aa8",
    "hr-private": "CANARY-HRPRIV-41f6",
}

GROUPS = """\
hr-team: [alice@example.com, hank@example.com]
hr-admins: [hank@example.com]
finance-team: [carol@example.com, dave@example.com]
finance-admins: [carol@example.com]
engineering: [bob@example.com]
"""

DEPARTMENTS = {
    "hr": """\
        title: Human Resources
        knowledge: ../knowledge/hr
        classification: internal
        admins: ["group:hr-admins"]
        ask: ["*@example.com"]
        templates:
          offer-letter:
            description: Draft an offer letter
            allowed: ["group:hr-team"]
            prompt: |
              Draft an offer letter for: {input}
              Use the company's offer letter policy and templates.
        channels:
          slack: ["C0HRHELP"]
          teams: []
        dont_know_below: 0.35
        """,
    "finance": """\
        title: Finance
        knowledge: ../knowledge/finance
        classification: internal
        admins: ["group:finance-admins"]
        ask: ["*@example.com"]
        channels:
          slack: ["C0FIN"]
        """,
    "eng": """\
        title: Engineering
        knowledge: ../knowledge/eng
        classification: internal
        admins: ["bob@example.com"]
        ask: ["group:engineering"]
        """,
}

DOCS: dict[str, str] = {
    "hr/time-off.md": f"""\
        ---
        title: Time off policy
        ---
        # Time off
        ## Annual vacation
        Full-time employees receive 25 days of paid vacation per year. Unused vacation days
        can be carried over until March 31 of the next year. Reference {CANARIES["hr"]}.
        ## Sick leave
        Employees may take up to 10 paid sick days per year without a doctor's note.
        """,
    "hr/investigations.md": f"""\
        ---
        title: Investigations process
        audience: ["group:hr-admins"]
        classification: confidential
        ---
        # Investigations
        Workplace investigations are handled by HR admins within 14 days.
        Case code {CANARIES["hr-private"]}.
        """,
    "finance/expenses.md": f"""\
        # Expense policy
        ## Meals
        Meal expenses are reimbursed up to 60 dollars per day when travelling for work.
        Submit receipts within 30 days. Reference {CANARIES["finance"]}.
        """,
    "finance/payroll/_access.yaml": """\
        audience: ["group:finance-admins"]
        classification: restricted
        """,
    "finance/payroll/salary-bands.md": f"""\
        # Salary bands 2026
        ## Engineering bands
        Payroll salary band L3 ranges from 95,000 to 120,000 dollars per year.
        Payroll runs on the 25th of every month. Code {CANARIES["payroll"]}.
        """,
    "eng/deploys.md": f"""\
        # Deploy process
        ## Production deploys
        Production deploys happen Tuesday to Thursday after code review approval.
        Rollbacks use the deploy dashboard. Reference {CANARIES["eng"]}.
        """,
}


def make_company(root: Path) -> Company:
    """Write the tiny company under ``root`` and load it through the real loader."""
    deps = root / "departments"
    deps.mkdir(parents=True, exist_ok=True)
    (deps / "groups.yaml").write_text(GROUPS)
    for name, body in DEPARTMENTS.items():
        (deps / f"{name}.yaml").write_text(textwrap.dedent(body))
    for rel, body in DOCS.items():
        path = root / "knowledge" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body))
    return load_company(deps)


def _front_matter(text: str) -> tuple[dict[str, object], str]:
    import yaml

    if text.startswith("---\n"):
        head, _, body = text[4:].partition("\n---\n")
        return yaml.safe_load(head) or {}, body
    return {}, text


def chunks_from_folder(dept: Department) -> list[SourceChunk]:
    """One chunk per markdown section — enough structure for pipeline tests."""
    import yaml

    out: list[SourceChunk] = []
    for path in sorted(dept.knowledge.rglob("*.md")):
        rel = path.relative_to(dept.knowledge)
        audiences: list[tuple[str, ...]] = []
        label = dept.classification
        for parent in reversed(rel.parents):
            access = dept.knowledge / parent / "_access.yaml"
            if access.exists():
                data = yaml.safe_load(access.read_text())
                audiences.append(tuple(data["audience"]))
                label = max(label, Classification.parse(data.get("classification", "internal")))
        meta, body = _front_matter(path.read_text())
        if "audience" in meta:
            audiences.append(tuple(meta["audience"]))  # type: ignore[arg-type]
        if "classification" in meta:
            label = max(label, Classification.parse(str(meta["classification"])))
        title = str(meta.get("title") or path.stem)
        heading = ""
        for i, section in enumerate(body.split("\n## ")):
            lines = section.strip().splitlines()
            if i > 0 and lines:
                heading, lines = lines[0].strip(), lines[1:]
            lines = [ln for ln in lines if not ln.startswith("# ")]
            out.append(
                SourceChunk(
                    chunk_id=f"{dept.name}/{rel}#{i}",
                    doc_id=f"{dept.name}/{rel}",
                    department=dept.name,
                    title=title,
                    path=f"knowledge/{dept.name}/{rel}",
                    text="\n".join(lines).strip(),
                    score=0.0,
                    anchor=heading,
                    modified=datetime(2026, 9, 14, tzinfo=UTC),
                    classification=label,
                    audiences=tuple(audiences),
                )
            )
    return out


# Confidential only by its front-matter label: no keywords, PII or secrets in the text.
CONFIDENTIAL_DOC = """\
    ---
    title: Relocation support
    classification: confidential
    ---
    # Relocation
    ## Allowance
    The relocation allowance is 7,500 dollars for moves over 50 kilometres.
    """


def add_document(company: Company, retriever: FakeRetriever, rel: str, body: str) -> None:
    """Write ``<department>/<path>`` into the company's knowledge and re-read the retriever's chunks."""
    dept, _, path = rel.partition("/")
    target = company.department(dept).knowledge / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(body))
    retriever.chunks[:] = [c for d in company for c in chunks_from_folder(d)]


class FakeRetriever:
    """Term-overlap retrieval that filters by scope *before* scoring, like the real one."""

    def __init__(self, chunks: Iterable[SourceChunk], *, version: str = "v1") -> None:
        self.chunks = list(chunks)
        self.version = version
        self.calls: list[tuple[str, AccessScope]] = []

    def retrieve(self, query: str, scope: AccessScope, *, top_k: int = 8) -> list[SourceChunk]:
        self.calls.append((query, scope))
        q = set(terms(query))
        scored: list[SourceChunk] = []
        for c in self.chunks:
            if c.department != scope.department or not scope.admits(c.audiences):
                continue
            overlap = len(q & set(terms(c.title + " " + c.text))) / max(1, len(q))
            if overlap > 0:
                scored.append(_with_score(c, round(overlap, 3)))
        scored.sort(key=lambda c: c.score, reverse=True)
        return scored[:top_k]

    def index_version(self, department: str) -> str | None:
        return self.version

    def audience_entries(self, department: str) -> frozenset[str]:
        return frozenset(
            e for c in self.chunks if c.department == department for lvl in c.audiences for e in lvl
        )


def _with_score(chunk: SourceChunk, score: float) -> SourceChunk:
    from dataclasses import replace

    return replace(chunk, score=score)


@dataclass
class FakeIndexer:
    refreshed: list[str] = field(default_factory=list)

    def refresh(self, department: Department, *, progress: ProgressFn | None = None) -> IndexReport:
        self.refreshed.append(department.name)
        if progress:
            progress(1, 1, "done")
        return IndexReport(department=department.name, unchanged=1, version="v1")

    def status(self, department: Department) -> IndexStatus:
        return IndexStatus(department=department.name, version="v1", documents=1, chunks=1, stale=False)


@dataclass
class MemoryAudit:
    entries: list[AuditEntry] = field(default_factory=list)
    feedback: list[tuple[str, str, str, str]] = field(default_factory=list)

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)

    def record_feedback(self, request_id: str, user: str, value: str, reason: str = "") -> None:
        self.feedback.append((request_id, user, value, reason))


class RecordingGenerator:
    """Wraps a generator and keeps every request it was given (for canary checks)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "recording")
        self.requests: list[object] = []

    def generate(self, request, *, on_delta=None):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        return self.inner.generate(request, on_delta=on_delta)  # type: ignore[attr-defined]
