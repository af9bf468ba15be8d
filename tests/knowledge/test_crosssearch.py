"""The one pass over several departments (``bot/knowledge/crosssearch.py``): same numbers as
each department alone, nothing outside the asker's scope, one consistent version."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pytest

from bot.config import Company, Department
from bot.core.types import AccessScope, Classification
from bot.errors import IndexMissing
from bot.knowledge import KnowledgeBase, lexical
from bot.knowledge.crosssearch import Layout, _fuse, fused_order, group_top, known_terms, query_words
from bot.knowledge.embedders import Embedder
from bot.knowledge.fusion import minmax, query_tokens, top_ids
from bot.knowledge.probe import Probe
from tests.fakes import CANARIES, make_company

QUESTIONS = [
    "How many vacation days do I get?",
    "Are meal expenses reimbursed when travelling?",
    "salary bands payroll investigations case code",
    "How are workplace investigations handled?",
    "deploy rollback dashboard",
    "What is the cafeteria menu on Tuesday?",
    "xyzzy",
]
OUTSIDER = frozenset({"*", "bob@example.com", "group:engineering"})
KEYS = {
    "outsider": OUTSIDER,
    "finance admin": frozenset({"*", "carol@example.com", "group:finance-team", "group:finance-admins"}),
    "hr admin": frozenset({"*", "hank@example.com", "group:hr-team", "group:hr-admins"}),
}
RESTRICTED = (CANARIES["payroll"], CANARIES["hr-private"])


@pytest.fixture
def company_kb(tmp_path: Path, wordllama: Embedder) -> tuple[Company, KnowledgeBase]:
    company = make_company(tmp_path)
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder=wordllama)
    for dept in company:
        kb.refresh(dept)
    return company, kb


def _alone(kb: KnowledgeBase, question: str, scope: AccessScope) -> Probe:
    """The department searched on its own (``LoadedIndex.search``), as before the one pass."""
    reader = kb.reader
    index = reader.loaded(scope.department)
    assert index is not None
    return reader._probe_in(index, scope, question, 8)


def _every_text(probes: list[Probe]) -> str:
    return " ".join(c.text for p in probes for c in p.chunks())


@pytest.mark.parametrize("who", sorted(KEYS))
def test_the_pass_gives_each_department_exactly_its_own_search(company_kb, who: str) -> None:  # type: ignore[no-untyped-def]
    company, kb = company_kb
    scopes = [AccessScope(department=d.name, keys=KEYS[who]) for d in company]
    for q in QUESTIONS:
        for probe, scope in zip(kb.probe_many(q, scopes, top_k=8), scopes, strict=True):
            alone = _alone(kb, q, scope)
            # every hit's fused score, cosine and BM25, bit for bit, and the scope's idf weights
            assert probe._hits == alone._hits and probe._terms == alone._terms
            assert probe._unseen == alone._unseen
            assert probe.best == alone.best and probe.chunks() == alone.chunks()


def test_restricted_canaries_never_reach_an_outsider_in_the_pass(company_kb) -> None:  # type: ignore[no-untyped-def]
    company, kb = company_kb
    # an admin's pass first, so a layout with the restricted chunks' departments is cached
    admin = [AccessScope(department=d.name, keys=KEYS["finance admin"]) for d in company]
    assert CANARIES["payroll"] in _every_text(kb.probe_many("salary bands payroll code", admin, top_k=50))
    outsider = [AccessScope(department=d.name, keys=OUTSIDER) for d in company]
    for q in [*QUESTIONS, " ".join(RESTRICTED), "salary bands payroll code"]:
        probes = kb.probe_many(q, outsider, top_k=50)
        assert not any(canary in _every_text(probes) for canary in RESTRICTED)
        for probe, scope in zip(probes, outsider, strict=True):
            index = kb.reader.loaded(scope.department)
            assert index is not None
            visible = index.mask(scope)
            assert all(visible[h.index] for h in probe._hits)  # not even an unbuilt hit
            assert all(c.department == scope.department and scope.admits(c.audiences) for c in probe.chunks())


def test_a_department_the_asker_may_not_ask_is_not_in_the_pass(company_kb) -> None:  # type: ignore[no-untyped-def]
    company, kb = company_kb
    everyone = [AccessScope(department=d.name, keys=KEYS["hr admin"]) for d in company]
    kb.probe_many("Meal expenses reimbursed", everyone, top_k=50)  # caches a layout with finance
    askable = [AccessScope(department=d.name, keys=OUTSIDER) for d in company if d.name != "finance"]
    for q in ("Meal expenses reimbursed travelling receipts", CANARIES["finance"], CANARIES["payroll"]):
        probes = kb.probe_many(q, askable, top_k=50)
        text = _every_text(probes)
        assert CANARIES["finance"] not in text and CANARIES["payroll"] not in text
        assert {c.department for p in probes for c in p.chunks()} <= {s.department for s in askable}


def test_a_refresh_is_seen_whole_by_the_next_pass(company_kb, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    company, kb = company_kb
    scopes = [AccessScope(department=d.name, keys=OUTSIDER) for d in company]
    kb.probe_many("vacation days", scopes, top_k=8)
    old_eng, hr = weakref.ref(kb.reader.loaded("eng")), kb.reader.loaded("hr")  # type: ignore[arg-type]
    page = tmp_path / "knowledge" / "eng" / "oncall.md"
    page.write_text("# On-call\nThe on-call rotation changes every Monday. Reference CANARY-NEW-0c1d.\n")
    kb.refresh(company.department("eng"))
    probes = kb.probe_many("on-call rotation Monday", scopes, top_k=8)
    eng = next(p for p, s in zip(probes, scopes, strict=True) if s.department == "eng")
    assert "CANARY-NEW-0c1d" in " ".join(c.text for c in eng.chunks())
    for probe, scope in zip(probes, scopes, strict=True):  # the other departments: unchanged versions
        assert probe.chunks() == _alone(kb, "on-call rotation Monday", scope).chunks()
    assert kb.reader.loaded("hr") is hr
    current = [kb.reader.loaded(s.department) for s in scopes]
    assert kb.reader._layouts.get(current).lays_out(current)  # type: ignore[arg-type]
    del probes, eng
    gc.collect()
    assert old_eng() is None  # no cached layout keeps the replaced version (and its vectors) alive


def test_an_unreadable_department_fails_the_pass_closed(company_kb, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    company, kb = company_kb
    scopes = [AccessScope(department=d.name, keys=OUTSIDER) for d in company]
    kb.probe_many("deploy", scopes, top_k=8)  # layout cached with eng's index
    current = next((tmp_path / "state").rglob("CURRENT"))
    current.unlink()
    gone = next(i for i, s in enumerate(scopes) if kb.index_version(s.department) is None)
    probes = kb.probe_many("deploy", scopes, top_k=8)  # it sits out; never its cached layout
    assert probes[gone].unavailable and probes[gone].chunks() == []
    assert all(not p.unavailable for i, p in enumerate(probes) if i != gone)
    with pytest.raises(IndexMissing):  # nobody left: the refusal
        kb.probe_many("deploy", [scopes[gone]] * 2, top_k=8)


def test_ann_departments_keep_their_own_path_next_to_the_pass(tmp_path: Path, wordllama: Embedder) -> None:
    company = make_company(tmp_path)
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder=wordllama)
    for dept in company:  # only hr gets an ANN index; the reader searches by ANN wherever there is one
        kb.indexer.ann_threshold = 1 if dept.name == "hr" else 10**9
        kb.refresh(dept)
    kb.reader.ann_threshold = 1
    uses_ann = {d.name: kb.reader.loaded(d.name).use_ann for d in company}  # type: ignore[union-attr]
    assert uses_ann == {"hr": True, "finance": False, "eng": False}
    for keys in KEYS.values():
        scopes = [AccessScope(department=d.name, keys=keys) for d in company]
        for q in QUESTIONS:
            probes = kb.probe_many(q, scopes, top_k=8)
            assert [p.chunks() for p in probes] == [kb.retrieve(q, s, top_k=8) for s in scopes]


def test_the_layout_references_the_segments_arrays(company_kb) -> None:  # type: ignore[no-untyped-def]
    company, kb = company_kb
    scopes = [AccessScope(department=d.name, keys=OUTSIDER) for d in company]
    kb.probe_many("deploy", scopes, top_k=8)
    indexes = [kb.reader.loaded(s.department) for s in scopes]
    layout = kb.reader._layouts.get(indexes)  # type: ignore[arg-type]
    chunks = sum(i.n for i in indexes if i is not None)
    assert layout.n == chunks and layout.nbytes() <= 16 * (chunks + 8)  # no copy of any vector


def _grid(sizes: list[int]) -> Layout:
    """A layout of departments of ``sizes`` chunks (only the numbering; no index behind it)."""
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    group_of = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    width = max(sizes)
    grid_pos = group_of * width + (np.arange(int(starts[-1])) - starts[group_of])
    n = int(starts[-1])
    return Layout((None,) * len(sizes), starts, np.ones(n, np.float32), (), group_of, width, grid_pos)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(6))
def test_candidates_and_fusion_of_all_departments_equal_each_alone(seed: int) -> None:
    """``group_top`` and ``_fuse`` against ``top_ids`` and ``minmax`` per department, with
    exact ties (copies of a page), departments smaller than the pool, empty ones and
    constant lists."""
    rng = np.random.default_rng(seed)
    sizes = [int(x) for x in rng.integers(0, 400, size=7)] + [0, 3]
    layout, k, top_k = _grid(sizes), 40, 8
    n = layout.n
    cos = np.round(rng.uniform(-0.2, 0.8, n), 2).astype(np.float32)  # rounded: many exact ties
    visible, lexical = (0.8, 0.3) if seed % 2 else (0.3, 0.7)  # dense and sparse candidate lists
    mask = rng.random(n) < visible
    cos = np.where(mask, cos, -np.inf).astype(np.float32)
    bm25 = np.where(mask & (rng.random(n) < lexical), np.round(rng.uniform(0, 9, n), 1), 0).astype(np.float32)
    bm25[: sizes[0]] = np.where(mask[: sizes[0]], 2.5, 0)  # one department with a constant BM25 list
    weights = rng.choice([0.3, 0.4], size=len(sizes))
    lex_all = group_top(bm25, layout, k, positive=True)
    sem_all = group_top(cos, layout, k, positive=False)
    union = np.flatnonzero(lex_all | sem_all)
    bounds = np.searchsorted(union, layout.starts)
    fused = _fuse(cos[union], bm25[union], layout.group_of[union], bounds, weights)
    pass_order = fused_order(fused, layout.group_of[union])
    for d in range(len(sizes)):
        a, b = int(layout.starts[d]), int(layout.starts[d + 1])
        bm, cs = bm25[a:b], cos[a:b]
        scored = np.flatnonzero(bm > 0)
        lex = top_ids(scored, bm[scored], k, positive=True)
        sem = top_ids(np.flatnonzero(mask[a:b]), cs[mask[a:b]], k, positive=False)
        assert set(lex.tolist()) == set((np.flatnonzero(lex_all[a:b])).tolist())
        assert set(sem.tolist()) == set((np.flatnonzero(sem_all[a:b])).tolist())
        order, alone = minmax(lex, sem, bm, cs, float(weights[d]))
        mine = fused[bounds[d] : bounds[d + 1]]
        ids = union[bounds[d] : bounds[d + 1]] - a
        by_id = dict(zip(ids.tolist(), mine.tolist(), strict=True))
        assert [by_id[i] for i in order.tolist()] == [float(f) for f in alone]  # bit for bit
        ranked = ids[np.lexsort((ids, -mine))][:top_k]
        assert ranked.tolist() == order[:top_k].tolist()
        in_pass = pass_order[bounds[d] : bounds[d + 1]] - bounds[d]  # the pass's own ordering
        assert ids[in_pass].tolist() == ids[np.lexsort((ids, -mine))].tolist()


def test_equal_scores_at_the_kth_place_go_to_the_lower_chunk_numbers() -> None:
    """Copies of a page score alike; which copies make the candidate list must not depend on
    how the candidates were laid out (alone, or inside the one pass)."""
    ids = np.array([9, 7, 5, 3, 1, 0, 2, 4, 6, 8], dtype=np.int64)
    scores = np.array([0.5, 0.5, 0.9, 0.5, 0.5, 0.5, 0.1, 0.5, 0.5, 0.5], dtype=np.float32)
    assert top_ids(ids, scores, 3, positive=False).tolist() == [5, 0, 1]
    assert top_ids(ids[::-1].copy(), scores[::-1].copy(), 3, positive=False).tolist() == [5, 0, 1]


def _team_files(topics: tuple[str, ...], canary: str) -> dict[str, str]:
    files = {
        f"team{i:02d}.md": f"# {topics[i % len(topics)].title()} guide {i}\n\n## Rules\n\nThe "
        f"{topics[i % len(topics)]} rules of team {i}; ask your manager before the end of the month.\n"
        for i in range(24)
    }
    files["restricted/_access.yaml"] = "audience: ['group:finance-admins']\nclassification: confidential\n"
    files["restricted/payroll.md"] = f"# Payroll\n\n## Table\n\nThe {canary} table lists every salary.\n"
    return files


def test_segments_and_tombstones_read_the_same_in_the_pass(tmp_path: Path, wordllama: Embedder) -> None:
    canaries = {"people": "quixotrel", "ops": "zorbulane"}
    depts = []
    for name, topics in (
        ("people", ("vacation", "pension", "hiring")),
        ("ops", ("laptops", "parking", "travel")),
    ):
        folder = tmp_path / "knowledge" / name
        for rel, text in _team_files(topics, canaries[name]).items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text, encoding="utf-8")
        depts.append(
            Department(
                name=name, title=name.title(), knowledge=folder, classification=Classification.INTERNAL
            )
        )
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder=wordllama)
    for dept in depts:
        kb.refresh(dept)
    (tmp_path / "knowledge" / "people" / "team03.md").write_text(
        "# Vacation guide 3\n\nTeam 3 now gets 30 days.\n"
    )
    kb.refresh(depts[0])
    people = kb.reader.loaded("people")
    assert people is not None and len(people.segments) == 2 and people.live < people.n  # a tombstone
    insider, outsider = frozenset({"*", "group:finance-admins"}), frozenset({"*", "group:engineering"})
    for keys in (insider, outsider):
        scopes = [AccessScope(department=d.name, keys=keys) for d in depts]
        for q in ("how many vacation days", "laptop rules", "quixotrel zorbulane salary table", "team 3"):
            probes = kb.probe_many(q, scopes, top_k=8)
            for probe, scope in zip(probes, scopes, strict=True):
                alone = _alone(kb, q, scope)
                assert probe._hits == alone._hits and probe.best == alone.best
                assert probe.chunks() == alone.chunks()
            if keys == outsider:
                assert not any(c in _every_text(probes) for c in canaries.values())
            elif "salary" in q:  # the restricted pages are there, for those they are for
                assert all(c in _every_text(probes) for c in canaries.values())


def test_query_terms_read_once_per_question_equal_each_departments_own(
    tmp_path: Path, wordllama: Embedder
) -> None:
    """``known_terms(query_words(tokens), index)`` (compound forms made once per question,
    one-segment vocabularies read directly) is ``lexical.query_term_ids`` of each index,
    ids and order, in one- and two-segment departments (an identifier only the second
    segment holds gets ``term_id``'s id beyond segment 0's vocabulary)."""
    folder = tmp_path / "knowledge" / "ops"
    for rel, text in _team_files(("laptops", "parking", "travel"), "zorbulane").items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    dept = Department(name="ops", title="Ops", knowledge=folder, classification=Classification.INTERNAL)
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder=wordllama)
    kb.refresh(dept)
    one = kb.reader.loaded("ops")
    (folder / "ledger.md").write_text("# Ledger\n\nSet gl_account and cost_center_code per row.\n")
    kb.refresh(dept)
    two = kb.reader.loaded("ops")
    assert one is not None and two is not None and len(one.segments) == 1 and len(two.segments) == 2
    questions = (
        "which GL account and cost center code for laptops",
        "laptops laptops parking rules rules",
        "gl_account gl account",
        "nothing known here xyzzy",
        "",
    )
    for index in (one, two):
        for q in questions:
            tokens = query_tokens(q)
            want = lexical.query_term_ids(tokens, index.term_id)
            assert known_terms(query_words(tokens), index) == want
    got = dict(known_terms(query_words(query_tokens("GL account cost center code")), two))
    assert got.get("gl_account", -1) >= len(two.segments[0].vocab)  # the second segment's word
