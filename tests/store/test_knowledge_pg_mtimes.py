"""Replicas on two machines, each with its OWN copy of the knowledge folder (two git
checkouts): same content, different mtimes. Identical content must settle: each replica
refreshes at most once, then neither is stale and nothing more is published — instead of
republishing versions back and forth forever (issue 12)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Department
from bot.core.types import Classification
from bot.knowledge.embedders import Embedder, get_embedder
from bot.knowledge.refresher import refresh_if_stale
from bot.store.backend import Database
from tests.store.test_knowledge_pg import LAPTOPS, SECRET, VACATION, Replica, rows


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    emb = get_embedder("wordllama")
    emb.embed(["warm up"])
    return emb


def checkout(base: Path, shift_s: int) -> Path:
    """A copy of one knowledge folder whose files' mtimes are ``shift_s`` seconds apart."""
    root = base / "knowledge" / "hr"
    (root / "pay").mkdir(parents=True)
    (root / "time-off.md").write_text(VACATION, encoding="utf-8")
    (root / "laptops.md").write_text(LAPTOPS, encoding="utf-8")
    (root / "pay" / "_access.yaml").write_text("audience: ['group:payroll']\n", encoding="utf-8")
    (root / "pay" / "board.md").write_text(SECRET, encoding="utf-8")
    (root / "pay" / "empty.md").write_text("", encoding="utf-8")  # fails alone ("empty file")
    touch_all(root, shift_s)
    return root


def touch_all(root: Path, shift_s: int) -> None:
    stamp = 1_700_000_000 + shift_s
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (stamp, stamp))


def dept_at(folder: Path) -> Department:
    return Department(name="hr", title="HR", knowledge=folder, classification=Classification.INTERNAL)


@pytest.fixture
def pair(tmp_path: Path, pg_db: Database, embedder: Embedder) -> Iterator[tuple[Replica, Replica]]:
    a, b = Replica(tmp_path / "a", pg_db, embedder), Replica(tmp_path / "b", pg_db, embedder)
    yield a, b
    for r in (a, b):
        r.kb.guard.close()


def published(db: Database) -> tuple[str, set[str]]:
    [(current,)] = rows(db, "select version from kb_current where department = 'hr'")
    kept = {str(v) for (v,) in rows(db, "select version from kb_versions where department = 'hr'")}
    return str(current), kept


def test_identical_folders_with_other_mtimes_settle_after_one_refresh_each(
    tmp_path: Path, pair: tuple[Replica, Replica], pg_db: Database
) -> None:
    a, b = pair
    dept_a, dept_b = dept_at(checkout(tmp_path / "ma", 0)), dept_at(checkout(tmp_path / "mb", 5000))
    first = a.kb.refresh(dept_a)
    assert b.poll() == ["hr"]
    assert b.kb.status(dept_b).stale  # B's mtimes are not A's: it has to look once
    report = b.kb.refresh(dept_b)  # hashes every file: all identical
    assert (report.added, report.changed, report.removed) == (0, 0, 0)
    assert report.unchanged == 3 and len(report.failed) == 1
    assert report.version == first.version  # nothing new was written or published
    assert published(pg_db) == (first.version, {first.version})
    assert not b.kb.status(dept_b).stale
    assert a.poll() == [] and not a.kb.status(dept_a).stale
    # the watcher's rule on both, several rounds: nobody refreshes, nothing is published
    for _ in range(3):
        for replica, dept in ((a, dept_a), (b, dept_b)):
            replica.poll()
            assert not refresh_if_stale(replica.kb, dept)
    assert published(pg_db) == (first.version, {first.version})
    assert b.kb.index_version("hr") == a.kb.index_version("hr") == first.version
    assert b.answer("laptop replacement") and b.answer("laptop replacement") == a.answer("laptop replacement")


def test_an_edit_pulled_on_both_checkouts_is_published_once(
    tmp_path: Path, pair: tuple[Replica, Replica], pg_db: Database
) -> None:
    a, b = pair
    fa, fb = checkout(tmp_path / "ma", 0), checkout(tmp_path / "mb", 5000)
    dept_a, dept_b = dept_at(fa), dept_at(fb)
    a.kb.refresh(dept_a)
    b.poll()
    b.kb.refresh(dept_b)  # B now knows its own mtimes
    for folder, shift in ((fa, 100), (fb, 7000)):  # "git pull" on both machines
        (folder / "laptops.md").write_text(LAPTOPS.replace("four years", "three years"), encoding="utf-8")
        touch_all(folder, shift)
    second = a.kb.refresh(dept_a)
    assert second.changed == 1
    current, _ = published(pg_db)
    assert b.poll() == ["hr"] and b.kb.status(dept_b).stale
    again = b.kb.refresh(dept_b)
    assert again.changed == 0 and again.version == current  # same content: nothing published
    assert published(pg_db)[0] == current
    assert not b.kb.status(dept_b).stale and not a.kb.status(dept_a).stale
    assert any("three years" in t for _, _, t in b.answer("laptop replacement"))


def test_a_real_edit_on_one_checkout_is_never_hidden_by_what_it_remembers(
    tmp_path: Path, pair: tuple[Replica, Replica], pg_db: Database
) -> None:
    a, b = pair
    fa, fb = checkout(tmp_path / "ma", 0), checkout(tmp_path / "mb", 5000)
    dept_a, dept_b = dept_at(fa), dept_at(fb)
    first = a.kb.refresh(dept_a)
    b.poll()
    b.kb.refresh(dept_b)
    (fb / "laptops.md").write_text(LAPTOPS.replace("four", "five"), encoding="utf-8")  # a new mtime
    assert b.kb.status(dept_b).stale
    report = b.kb.refresh(dept_b)
    assert report.changed == 1 and report.version != first.version
    served = b.kb.index_version("hr")  # the refresh's version, or the merge right after it
    assert served is not None and served >= report.version and published(pg_db)[0] == served
    assert any("five years" in t for _, _, t in b.answer("laptop replacement"))
    # an access change is never remembered away either
    (fb / "_access.yaml").write_text("audience: ['group:staff']\n", encoding="utf-8")
    assert b.kb.status(dept_b).stale


def test_without_a_shared_store_a_touched_file_still_writes_a_version(
    tmp_path: Path, embedder: Embedder
) -> None:
    """SQLite installs keep today's behaviour (no remembered fingerprints)."""
    from bot.knowledge import KnowledgeBase

    folder = checkout(tmp_path / "m", 0)
    dept = dept_at(folder)
    kb = KnowledgeBase(state_dir=tmp_path / "s", embedder=embedder)
    try:
        first = kb.refresh(dept)
        touch_all(folder, 42)
        assert kb.status(dept).stale
        second = kb.refresh(dept)
        assert second.unchanged == 3 and second.version != first.version
        assert not kb.status(dept).stale
        assert not (tmp_path / "s" / "indexes" / "hr" / "LOCAL_FILES.json").exists()
    finally:
        kb.guard.close()


def test_a_failed_first_refresh_on_a_checkout_narrows_only_what_changed(
    tmp_path: Path, pair: tuple[Replica, Replica], pg_db: Database
) -> None:
    """B synced A's version (A's mtimes) and its first refresh fails before building: the
    narrowing hashes B's files and drops only the document whose content changed — not
    every document, which it would then publish to every replica."""
    import json

    from bot.knowledge.index import current_version

    a, b = pair
    fa, fb = checkout(tmp_path / "ma", 0), checkout(tmp_path / "mb", 5000)
    first = a.kb.refresh(dept_at(fa))
    b.poll()
    (fb / "laptops.md").write_text(LAPTOPS.replace("four", "five"), encoding="utf-8")

    def broken(dept: Department) -> Embedder:
        raise RuntimeError("the embedder is not installed here")

    b.kb.indexer._embedder_for = broken
    with pytest.raises(RuntimeError):
        b.kb.refresh(dept_at(fb))
    narrowed = current_version(b.root)
    assert narrowed is not None and narrowed != first.version
    files = json.loads((b.root / "versions" / narrowed / "files.json").read_text(encoding="utf-8"))
    assert sorted(files) == ["pay/board.md", "time-off.md"]
    meta = json.loads((b.root / "versions" / narrowed / "meta.json").read_text(encoding="utf-8"))
    assert meta["documents"] == 2
    assert published(pg_db)[0] == narrowed  # the narrowing reached every replica, as before
    assert a.poll() == ["hr"]
    assert any("25 days" in t for _, _, t in a.answer("how many vacation days"))


def test_an_unchanged_refresh_after_a_failed_sync_does_not_roll_the_database_back(
    tmp_path: Path, pair: tuple[Replica, Replica], pg_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from bot.knowledge.pg_sync import KnowledgeSync

    a, b = pair
    fa = checkout(tmp_path / "ma", 0)
    first = a.kb.refresh(dept_at(fa))
    assert b.poll() == ["hr"]
    (fa / "laptops.md").unlink()  # revoked on A's checkout
    second = a.kb.refresh(dept_at(fa))
    fb = checkout(tmp_path / "mb", 0)  # B's checkout is not pulled yet: the first version's content

    def lost(*args: object) -> bool:
        raise psycopg.OperationalError("blip")

    monkeypatch.setattr(KnowledgeSync, "_materialise", lost)
    report = b.kb.refresh(dept_at(fb))  # nothing new here, and B could not sync the second
    monkeypatch.undo()
    assert report.version == first.version
    served = a.kb.index_version("hr")  # the refresh's version, or the merge right after it
    assert served is not None and served >= second.version
    assert published(pg_db)[0] == served  # not rolled back over the revocation
    assert b.poll() == ["hr"] and b.kb.index_version("hr") == a.kb.index_version("hr")
