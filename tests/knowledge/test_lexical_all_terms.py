"""Chunks that hold every query term lead the lexical list (``lexical.all_terms_rank``):
in the one-department search and the one pass alike, with ``Hit.bm25`` left as plain BM25,
and without letting a word only restricted chunks hold change what an outsider gets.
``[retrieval] all_terms_first`` switches it (on by default), passed down from the settings
to both paths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.core.types import AccessScope
from bot.knowledge import KnowledgeBase, lexical
from bot.knowledge.embedders import Embedder
from tests.knowledge.test_lexical_compounds import _kb as compounds_kb

# "backup" is rare and the vault page repeats it; "schedule" and "files" are common, so
# plain BM25 puts the vault page above the one page that holds all three words.
FILLER = {
    f"team-{i}.md": f"# Team {i}\n\nThe team {i} schedule lists meetings. Shared files live in "
    f"the team {i} drive.\n"
    for i in range(12)
}
PUBLIC = {
    **FILLER,
    "vault.md": "# Vault\n\nBackup vault: backup copies, backup keys, backup tapes and backup "
    "logs. Backup.\n",
    "nightly.md": "# Nightly\n\nThe backup schedule copies all shared files every night at two.\n",
}
RESTRICTED = {
    "private/_access.yaml": "audience: ['group:it-admins']\nclassification: confidential\n",
    "private/payroll.md": "# Payroll export\n\nThe payroll backup schedule keeps payroll files.\n",
}
EVERYONE = frozenset({"*"})
OUTSIDER = frozenset({"*", "group:engineering"})
QUESTION = "backup schedule files"


def _kb(tmp_path: Path, name: str, files: dict[str, str], embedder: Embedder) -> KnowledgeBase:
    return compounds_kb(tmp_path, name, files, embedder, ("it", "ops"))


@pytest.fixture
def kb(tmp_path: Path, wordllama: Embedder) -> KnowledgeBase:
    return _kb(tmp_path, "a", PUBLIC, wordllama)


def test_rank_puts_chunks_with_every_term_first_and_keeps_their_order() -> None:
    bm25 = np.array([5.0, 2.0, 3.0, 0.0, 1.0], dtype=np.float32)
    held = np.array([1, 3, 3, 3, 2])
    rank = lexical.all_terms_rank(bm25, held, 3, bm25.max())
    assert rank.dtype == np.float32
    assert list(np.argsort(-rank, kind="stable")) == [2, 1, 0, 4, 3]
    assert rank[3] == 0.0  # no BM25 (not visible): never a candidate
    # one required term is plain BM25; a chunk short of one term is not raised
    assert lexical.all_terms_rank(bm25, held, 1, bm25.max()) is bm25
    assert rank[0] == bm25[0] and rank[4] == bm25[4]


def _switched_off(kb: KnowledgeBase, wordllama: Embedder) -> KnowledgeBase:
    """The same indexes read with ``all_terms_first`` off (plain BM25 order)."""
    return KnowledgeBase(state_dir=kb.state_dir, embedder=wordllama, all_terms_first=False)


def test_the_page_with_every_term_leads_bm25(kb: KnowledgeBase, wordllama: Embedder) -> None:
    index = kb.reader.loaded("it")
    off = _switched_off(kb, wordllama).reader.loaded("it")
    assert index is not None and off is not None
    emb = kb.reader._embedder_named(index.embedder)
    mask = index.mask(AccessScope("it", EVERYONE))
    hits, _, _ = index.search(QUESTION, mask, 3, embedder=emb, mode="bm25")
    assert "every night" in index.text(hits[0].index)
    plain, _, _ = off.search(QUESTION, off.mask(AccessScope("it", EVERYONE)), 3, embedder=emb, mode="bm25")
    assert "vault" in index.text(plain[0].index).lower()
    # Hit.bm25 is the plain BM25 either way; only the order differs
    raw = {h.index: h.bm25 for h in plain}
    assert all(raw[h.index] == h.bm25 for h in hits if h.index in raw)
    assert raw[plain[0].index] > raw[hits[0].index]


def test_the_hybrid_answer_starts_at_the_page_with_every_term(kb: KnowledgeBase) -> None:
    top = kb.retrieve(QUESTION, AccessScope("it", EVERYONE), top_k=1)[0]
    assert top.doc_id == "it/nightly.md"


@pytest.mark.parametrize("flag", [True, False], ids=["on", "off"])
def test_both_paths_rank_identically(kb: KnowledgeBase, wordllama: Embedder, flag: bool) -> None:
    kb = kb if flag else _switched_off(kb, wordllama)
    assert kb.reader.all_terms_first is flag
    scopes = [AccessScope("it", EVERYONE), AccessScope("ops", EVERYONE)]
    for q in (QUESTION, "backup vault keys", "team schedule", "shared files drive team", "nothing here"):
        for probe, scope in zip(kb.probe_many(q, scopes, top_k=5), scopes, strict=True):
            index = kb.reader.loaded(scope.department)
            assert index is not None
            alone = kb.reader._probe_in(index, scope, q, 5)
            assert probe._hits == alone._hits and probe._terms == alone._terms, q
            assert probe._unseen == alone._unseen and probe.best == alone.best, q


def test_a_word_only_restricted_chunks_hold_changes_nothing_for_an_outsider(
    tmp_path: Path, wordllama: Embedder
) -> None:
    public = _kb(tmp_path, "p", PUBLIC, wordllama)
    both = _kb(tmp_path, "r", {**PUBLIC, **RESTRICTED}, wordllama)
    scope = AccessScope("it", OUTSIDER)
    for q in ("payroll backup schedule files", QUESTION, "payroll files"):
        a = public.retrieve(q, scope, top_k=10)
        b = both.retrieve(q, scope, top_k=10)
        assert [c.chunk_id for c in b] == [c.chunk_id for c in a], q
        assert [c.score for c in b] == pytest.approx([c.score for c in a], abs=1e-6), q
    # "payroll" is required of nobody the outsider can see: the nightly page still leads
    assert both.retrieve("payroll backup schedule files", scope, top_k=1)[0].doc_id == "it/nightly.md"


def test_the_setting_reaches_the_reader_and_its_environment_override_works(tmp_path: Path) -> None:
    """``[retrieval] all_terms_first`` (validated: true or false), through the normal
    ``DEPTBOT_RETRIEVAL__ALL_TERMS_FIRST`` override, into the knowledge base the bot builds
    (``bot.wiring.build_knowledge``): the named search and the one pass both read it there."""
    from bot.errors import ConfigError
    from bot.settings import Settings
    from bot.wiring import build_knowledge

    def reader_flag(env: dict[str, str]) -> bool:
        settings = Settings.load(departments=tmp_path, state=tmp_path / "state", env=env)
        return build_knowledge(settings).reader.all_terms_first

    assert reader_flag({}) is True
    assert reader_flag({"DEPTBOT_RETRIEVAL__ALL_TERMS_FIRST": "false"}) is False
    assert reader_flag({"DEPTBOT_ALL_TERMS_FIRST": "0"}) is True  # the old variable is read no more
    wrong = {"DEPTBOT_RETRIEVAL__ALL_TERMS_FIRST": "maybe"}
    with pytest.raises(ConfigError, match=r"retrieval\.all_terms_first"):
        Settings.load(departments=tmp_path, state=tmp_path / "s", env=wrong)
