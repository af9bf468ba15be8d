"""Knowledge published to PostgreSQL: every replica serves the same complete version.

Two "replicas" are two KnowledgeBases with their own state folders on one database
(the refresh lease in PostgreSQL, ``PgIndexHook`` publishing and syncing), as two
machines sharing one knowledge folder would be.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Department
from bot.core.ports import Notice
from bot.core.types import AccessScope, Classification
from bot.errors import KnowledgeError, RefreshBusy
from bot.knowledge import KnowledgeBase
from bot.knowledge.embedders import Embedder, get_embedder
from bot.knowledge.index import current_version
from bot.knowledge.pg_publish import read_marker
from bot.knowledge.pg_sync import PgIndexHook
from bot.knowledge.signatures import signature
from bot.ops.locks import LeaseLocks, ReplicaLeases
from bot.store.backend import Database
from bot.store.pg_ops import PgLeaseLocks

VACATION = "# Time off\n\n## Annual vacation\n\nEmployees receive 25 days of annual vacation per year.\n"
LAPTOPS = "# Laptops\n\n## Replacement\n\nLaptops are replaced every four years by IT.\n"
SECRET = "# Salaries\n\n## Board pay\n\nThe zebracorn bonus pool for the board is 4.2 million.\n"


class Told:
    def __init__(self) -> None:
        self.notices: list[tuple[str | None, str, str]] = []

    def notify(self, department: str | None, kind: str, text: str) -> bool:
        self.notices.append((department, kind, text))
        return True

    def recent(self, department: str | None = None, *, limit: int = 20) -> list[Notice]:
        return []


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    emb = get_embedder("wordllama")
    emb.embed(["warm up"])
    return emb


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "knowledge" / "hr"
    (root / "pay").mkdir(parents=True)
    (root / "time-off.md").write_text(VACATION, encoding="utf-8")
    (root / "laptops.md").write_text(LAPTOPS, encoding="utf-8")
    (root / "pay" / "_access.yaml").write_text("audience: ['group:payroll']\n", encoding="utf-8")
    (root / "pay" / "board.md").write_text(SECRET, encoding="utf-8")
    return root


@pytest.fixture
def dept(folder: Path) -> Department:
    return Department(name="hr", title="HR", knowledge=folder, classification=Classification.INTERNAL)


class Replica:
    def __init__(self, home: Path, db: Database, embedder: Embedder) -> None:
        self.state = home
        self.told = Told()
        self.hook = PgIndexHook(db, home, notices=self.told)
        state = home
        self.kb = KnowledgeBase(
            state_dir=home,
            embedder=embedder,
            notices=self.told,
            leases=lambda: ReplicaLeases(PgLeaseLocks(db), lambda: LeaseLocks.in_state_dir(state)),
            hook=self.hook,
        )

    @property
    def root(self) -> Path:
        return self.state / "indexes" / "hr"

    def poll(self) -> list[str]:
        return self.kb.sync_published(["hr"])

    def answer(self, query: str, *keys: str) -> list[tuple[str, str, str]]:
        scope = AccessScope(department="hr", keys=frozenset({"*", *keys}))
        return [(c.doc_id, c.anchor, c.text) for c in self.kb.retrieve(query, scope, top_k=5)]


@pytest.fixture
def replicas(tmp_path: Path, pg_db: Database, embedder: Embedder) -> Iterator[tuple[Replica, Replica]]:
    a, b = Replica(tmp_path / "a", pg_db, embedder), Replica(tmp_path / "b", pg_db, embedder)
    yield a, b
    for r in (a, b):
        r.kb.guard.close()


def rows(db: Database, sql: str, *args: object) -> list[tuple[object, ...]]:
    with db.tx() as c:
        cur = c.execute(sql, list(args))
        return list(cur.fetchall()) if cur.description else []


def test_replica_b_answers_like_a_within_one_sync(
    replicas: tuple[Replica, Replica], dept: Department, pg_db: Database
) -> None:
    a, b = replicas
    report = a.kb.refresh(dept)
    assert rows(pg_db, "select version from kb_current where department = 'hr'") == [(report.version,)]
    assert b.kb.index_version("hr") is None
    assert b.poll() == ["hr"]
    assert b.kb.index_version("hr") == report.version == a.kb.index_version("hr")
    assert not b.kb.status(dept).stale  # fingerprints and marker came across: B need not rebuild
    for query in ("how many vacation days", "laptop replacement"):
        assert b.answer(query) == a.answer(query) and b.answer(query)
    assert b.answer("zebracorn bonus pool", "group:payroll") == a.answer(
        "zebracorn bonus pool", "group:payroll"
    )
    assert b.poll() == []  # nothing new: one cheap select
    assert read_marker(b.root) == report.version == read_marker(a.root)


def test_second_refresh_switches_b_to_the_complete_new_version(
    replicas: tuple[Replica, Replica], dept: Department, folder: Path, pg_db: Database
) -> None:
    a, b = replicas
    a.kb.refresh(dept)
    b.poll()
    (folder / "laptops.md").write_text(LAPTOPS.replace("four years", "three years"), encoding="utf-8")
    second = a.kb.refresh(dept)
    assert second.changed == 1
    assert b.poll() == ["hr"]
    served = a.kb.index_version("hr")  # the refresh's version, or the merge right after it
    assert served is not None and served >= second.version
    assert b.kb.index_version("hr") == served
    texts = [t for _, _, t in b.answer("laptop replacement")]
    assert any("three years" in t for t in texts) and not any("four years" in t for t in texts)
    assert b.answer("laptop replacement") == a.answer("laptop replacement")
    # both folders list the same segments, every one complete on disk
    a_meta = (a.root / "versions" / served / "meta.json").read_text(encoding="utf-8")
    b_meta = (b.root / "versions" / served / "meta.json").read_text(encoding="utf-8")
    import json

    names = [s["name"] for s in json.loads(a_meta)["segments"]]
    assert names == [s["name"] for s in json.loads(b_meta)["segments"]]
    assert all((b.root / "segments" / n / "meta.json").is_file() for n in names)
    # the database keeps the current and the previous version, and only their segments
    kept = {r[0] for r in rows(pg_db, "select version from kb_versions where department = 'hr'")}
    assert served in kept and len(kept) == 2


def test_crash_between_segment_upload_and_current_leaves_b_on_old_version(
    replicas: tuple[Replica, Replica], dept: Department, folder: Path, pg_db: Database
) -> None:
    a, b = replicas
    first = a.kb.refresh(dept)
    b.poll()

    def crash() -> None:
        raise RuntimeError("power cut")

    a.hook.publisher.before_current = crash
    (folder / "laptops.md").write_text(LAPTOPS.replace("four years", "three years"), encoding="utf-8")
    with pytest.raises(RuntimeError):
        a.kb.refresh(dept)
    # the new segment reached the database, the pointer did not
    assert rows(pg_db, "select count(*) from kb_segments where department = 'hr'") == [(2,)]
    assert rows(pg_db, "select version from kb_current where department = 'hr'") == [(first.version,)]
    assert b.poll() == []
    assert b.kb.index_version("hr") == first.version
    assert any("four years" in t for _, _, t in b.answer("laptop replacement"))
    # A narrowed its own folder (the failed refresh's rule) without claiming it is published
    assert current_version(a.root) != first.version and read_marker(a.root) == first.version
    # the next refresh publishes a complete version and collects the orphan segment
    a.hook.publisher.before_current = None
    a.kb.refresh(dept)
    assert b.poll() == ["hr"] and b.kb.index_version("hr") == a.kb.index_version("hr")
    assert any("three years" in t for _, _, t in b.answer("laptop replacement"))
    listed = rows(
        pg_db,
        "select count(*) from kb_segments s where not exists (select 1 from kb_versions v, "
        "jsonb_array_elements(v.meta->'segments') e where e->>'name' = s.name)",
    )
    assert listed == [(0,)]


def test_two_indexers_at_once_one_is_busy(replicas: tuple[Replica, Replica], dept: Department) -> None:
    a, b = replicas
    inside, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow(done: int, total: int, name: str) -> None:
        inside.set()
        release.wait(30)

    def run() -> None:
        try:
            a.kb.refresh(dept, progress=slow)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    try:
        assert inside.wait(30)
        with pytest.raises(RefreshBusy):
            b.kb.refresh(dept)
    finally:
        release.set()
        t.join(60)
    assert not errors
    assert b.poll() == ["hr"]


def test_canary_restricted_text_never_reaches_an_outsider_on_b(
    replicas: tuple[Replica, Replica], dept: Department
) -> None:
    a, b = replicas
    a.kb.refresh(dept)
    b.poll()
    for query in ("zebracorn bonus pool", "board pay salaries", "4.2 million"):
        outsider = b.answer(query, "group:engineering")
        assert outsider and all("zebracorn" not in t and "board.md" not in d for d, _, t in outsider)
    assert any("zebracorn" in t for _, _, t in b.answer("zebracorn bonus pool", "group:payroll"))


@pytest.mark.parametrize("tamper", ["audiences", "document signature", "chunk signature", "derived row file"])
def test_tampered_rows_make_b_refuse_the_version_and_notify_once(
    replicas: tuple[Replica, Replica], dept: Department, folder: Path, pg_db: Database, tamper: str
) -> None:
    a, b = replicas
    first = a.kb.refresh(dept)
    b.poll()
    (folder / "pay" / "bonus.md").write_text(SECRET.replace("board", "staff"), encoding="utf-8")
    second = a.kb.refresh(dept)
    [(segment,)] = rows(
        pg_db, "select segment from kb_documents where path like '%bonus.md' and department = 'hr'"
    )
    public = signature([])
    if tamper == "audiences":
        rows(
            pg_db,
            "update kb_documents set entry = jsonb_set(entry, '{audiences}', '[]') where segment = ?",
            segment,
        )
    elif tamper == "document signature":
        rows(pg_db, "update kb_documents set signature = ? where segment = ?", public, segment)
    elif tamper == "chunk signature":
        rows(pg_db, "update kb_chunks set signature = ? where segment = ?", public, segment)
    else:  # a "derived" file named like a verified one: every chunk mapped to document 0
        import io

        import numpy as np

        [(n,)] = rows(pg_db, "select chunks from kb_segments where name = ?", segment)
        buf = io.BytesIO()
        np.save(buf, np.zeros(int(str(n)), dtype=np.int32))
        rows(
            pg_db,
            "insert into kb_segment_files values ('hr', ?, 'chunk_doc.npy', ?)",
            segment,
            buf.getvalue(),
        )
    assert b.poll() == []
    assert first.version != second.version
    assert not (b.root / "versions" / second.version).exists()
    # fail closed: the replaced version may be what a revocation replaced
    assert b.kb.index_version("hr") is None
    with pytest.raises(KnowledgeError):
        b.answer("zebracorn bonus pool", "group:engineering")
    assert [k for _, k, _ in b.told.notices] == ["index-sync-failed"]
    assert "did not verify" in b.told.notices[0][2] and "stops answering" in b.told.notices[0][2]
    assert b.poll() == [] and len(b.told.notices) == 1  # told once, not retried every tick
    with pytest.raises(RefreshBusy):  # nor rebuilt here only to be refused by publish
        b.kb.refresh(dept)
    assert rows(pg_db, "select version from kb_current where department = 'hr'") == [(second.version,)]


def test_missing_derived_files_are_rebuilt_from_the_texts(
    replicas: tuple[Replica, Replica], dept: Department, pg_db: Database
) -> None:
    a, b = replicas
    a.kb.refresh(dept)
    rows(pg_db, "delete from kb_segment_files")
    assert b.poll() == ["hr"]
    for query in ("how many vacation days", "laptop replacement"):
        assert b.answer(query) == a.answer(query)
    # the indexer's own tokenisation (index.token_ids): byte for byte what A wrote
    [segment] = [p.name for p in (a.root / "segments").iterdir()]
    for file in ("tokens.npy", "token_offsets.npy", "vocab.json"):
        theirs, ours = a.root / "segments" / segment / file, b.root / "segments" / segment / file
        assert ours.read_bytes() == theirs.read_bytes()


def test_a_document_without_audiences_is_never_published(
    replicas: tuple[Replica, Replica], dept: Department, pg_db: Database
) -> None:
    import json

    a, _ = replicas
    report = a.kb.refresh(dept)
    [segment] = [p for p in (a.root / "segments").iterdir()]
    docs = json.loads((segment / "docs.json").read_text(encoding="utf-8"))
    for d in docs:
        del d["audiences"]
    (segment / "docs.json").write_text(json.dumps(docs), encoding="utf-8")
    rows(pg_db, "delete from kb_current")
    rows(pg_db, "delete from kb_versions")
    rows(pg_db, "delete from kb_segments")
    with pytest.raises(KnowledgeError, match="never published as public"):
        a.hook.publisher.publish(a.root, "hr", report.version)
    assert rows(pg_db, "select count(*) from kb_segments") == [(0,)]
    assert rows(pg_db, "select count(*) from kb_current") == [(0,)]


def test_an_existing_local_index_is_published_by_the_next_refresh(
    tmp_path: Path, pg_db: Database, embedder: Embedder, dept: Department
) -> None:
    local = KnowledgeBase(state_dir=tmp_path / "a", embedder=embedder)
    before = local.refresh(dept)  # an installation before PostgreSQL
    local.guard.close()
    a, b = Replica(tmp_path / "a", pg_db, embedder), Replica(tmp_path / "b", pg_db, embedder)
    try:
        assert a.kb.status(dept).stale  # never published: the next refresh (start-up, watcher) runs
        report = a.kb.refresh(dept)  # nothing changed: the served version is published as is
        assert not a.kb.status(dept).stale
        assert report.version == before.version
        assert rows(pg_db, "select version from kb_current") == [(before.version,)]
        assert b.poll() == ["hr"]
        assert b.answer("laptop replacement") == a.answer("laptop replacement")
    finally:
        a.kb.guard.close()
        b.kb.guard.close()


def test_the_watcher_syncs_even_when_it_watches_no_folder(
    replicas: tuple[Replica, Replica], dept: Department
) -> None:
    import time

    from bot.knowledge.watcher import KnowledgeWatcher

    a, b = replicas
    watcher = KnowledgeWatcher(
        indexer=b.kb,
        departments=lambda: [dept],
        mode="off",
        sync=b.kb.sync_published,
        sync_seconds=0.05,
    ).start()
    try:
        report = a.kb.refresh(dept)
        deadline = time.monotonic() + 20
        while b.kb.index_version("hr") != report.version and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b.kb.index_version("hr") == report.version
        assert watcher.syncs >= 1
    finally:
        watcher.stop()


def test_the_database_url_wires_the_shared_lease_and_the_publishing_hook(tmp_path: Path, pg_url: str) -> None:
    from bot.settings import Settings
    from bot.wiring import build_knowledge

    env = {"DEPTBOT_DATABASE_URL": pg_url}
    kb = build_knowledge(
        Settings(departments_dir=tmp_path, state_dir=tmp_path / "s", env=env), notices=Told()
    )
    assert kb.shared and isinstance(kb.indexer.hook, PgIndexHook)
    with kb.guard.hold("hr") as free:
        assert free
        assert isinstance(kb.guard._locks.get(), ReplicaLeases)
    kb.guard.close()
    plain = build_knowledge(
        Settings(departments_dir=tmp_path, state_dir=tmp_path / "p", env={}), notices=Told()
    )
    assert not plain.shared and plain.sync_published(["hr"]) == []


def test_a_database_error_mid_sync_keeps_the_old_version_tells_once_and_retries(
    replicas: tuple[Replica, Replica],
    dept: Department,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psycopg

    from bot.knowledge import pg_sync

    a, b = replicas
    first = a.kb.refresh(dept)
    b.poll()
    (folder / "laptops.md").write_text(LAPTOPS.replace("four years", "three years"), encoding="utf-8")
    a.kb.refresh(dept)

    def lost(*args: object) -> object:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(pg_sync, "read_chunks", lost)
    assert b.poll() == [] and b.poll() == []
    assert b.kb.index_version("hr") == first.version
    assert any("four years" in t for _, _, t in b.answer("laptop replacement"))
    assert [k for _, k, _ in b.told.notices] == ["index-sync-failed"]
    assert "server closed" not in b.told.notices[0][2]  # the driver's text stays out of notices
    assert not [p for p in (b.root / "segments").iterdir() if p.name.startswith(".tmp")]
    monkeypatch.undo()
    assert b.poll() == ["hr"]
    assert b.kb.index_version("hr") == a.kb.index_version("hr")


def test_a_version_from_before_segments_is_published_as_one_segment(
    tmp_path: Path, pg_db: Database, embedder: Embedder, dept: Department
) -> None:
    import json
    import shutil

    local = KnowledgeBase(state_dir=tmp_path / "a", embedder=embedder)
    built = local.refresh(dept)
    local.guard.close()
    root = tmp_path / "a" / "indexes" / "hr"
    meta = json.loads((root / "versions" / built.version / "meta.json").read_text(encoding="utf-8"))
    (seg,) = meta["segments"]
    legacy = root / "versions" / "20250101T000000.000000-legacy"
    shutil.copytree(root / "segments" / seg["name"], legacy)
    shutil.copy(root / "versions" / built.version / "files.json", legacy / "files.json")
    old = json.loads((legacy / "meta.json").read_text(encoding="utf-8"))
    old.pop("segment")
    (legacy / "meta.json").write_text(json.dumps({**old, "version": legacy.name}), encoding="utf-8")
    (root / "CURRENT").write_text(legacy.name, encoding="utf-8")
    shutil.rmtree(root / "segments")
    shutil.rmtree(root / "versions" / built.version)
    a, b = Replica(tmp_path / "a", pg_db, embedder), Replica(tmp_path / "b", pg_db, embedder)
    try:
        a.kb.refresh(dept)
        assert rows(pg_db, "select version from kb_current") == [(legacy.name,)]
        assert b.poll() == ["hr"]
        for query in ("how many vacation days", "laptop replacement"):
            assert b.answer(query) == a.answer(query) and b.answer(query)
    finally:
        a.kb.guard.close()
        b.kb.guard.close()


def test_a_nul_character_in_a_parsed_file_does_not_stop_publishing(
    replicas: tuple[Replica, Replica], dept: Department, folder: Path
) -> None:
    a, b = replicas
    filler = "Filler text about office plants and watering schedules. " * 200  # past the binary sniff
    (folder / "odd.md").write_text(
        f"# Odd\n\n{filler}\n\n## Quokka\x00 rota\n\nThe quokka\x00 rota is on Fridays.\n", encoding="utf-8"
    )
    a.kb.refresh(dept)
    assert b.poll() == ["hr"]
    assert any("quokka" in t for _, _, t in b.answer("quokka rota"))


def test_a_refresh_built_on_an_older_version_does_not_publish_over_the_newer(
    replicas: tuple[Replica, Replica],
    dept: Department,
    folder: Path,
    pg_db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psycopg

    from bot.knowledge.pg_sync import KnowledgeSync

    a, b = replicas
    first = a.kb.refresh(dept)
    b.poll()
    (folder / "laptops.md").unlink()  # revoked on A
    second = a.kb.refresh(dept)

    def lost(*args: object) -> bool:
        raise psycopg.OperationalError("blip")

    monkeypatch.setattr(KnowledgeSync, "_materialise", lost)
    with pytest.raises(RefreshBusy, match="moved on"):  # B's build started from the first version
        b.kb.refresh(dept)
    monkeypatch.undo()
    served = a.kb.index_version("hr")  # the refresh's version, or the merge right after it
    assert served is not None and served >= second.version > first.version
    assert rows(pg_db, "select version from kb_current where department = 'hr'") == [(served,)]
    assert b.poll() == ["hr"] and b.kb.index_version("hr") == served


def test_errors_other_than_the_database_are_retried_on_the_next_tick(
    replicas: tuple[Replica, Replica], dept: Department, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.knowledge import pg_sync

    a, b = replicas
    a.kb.refresh(dept)
    b.poll()
    (folder / "laptops.md").write_text(LAPTOPS.replace("four years", "three years"), encoding="utf-8")
    a.kb.refresh(dept)

    def odd(*args: object) -> object:
        raise KeyError("doc_no")

    monkeypatch.setattr(pg_sync, "read_chunks", odd)
    assert b.poll() == []
    assert any("four years" in t for _, _, t in b.answer("laptop replacement"))  # within the grace
    monkeypatch.undo()
    assert b.poll() == ["hr"]
    assert any("three years" in t for _, _, t in b.answer("laptop replacement"))


def test_a_replica_that_cannot_sync_for_a_minute_stops_answering_until_it_can(
    replicas: tuple[Replica, Replica], dept: Department, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from bot.knowledge import pg_sync

    a, b = replicas
    a.kb.refresh(dept)
    b.poll()
    (folder / "laptops.md").unlink()  # the new version revokes it
    a.kb.refresh(dept)
    now = [1000.0]
    b.hook.sync.clock = lambda: now[0]

    def lost(*args: object) -> object:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(pg_sync, "read_chunks", lost)
    assert b.poll() == []
    now[0] += getattr(pg_sync, "FAIL_CLOSED_SECONDS", 60.0) - 1
    assert b.poll() == [] and b.answer("laptop replacement")  # still within the grace
    now[0] += 1
    assert b.poll() == []
    assert b.kb.index_version("hr") is None
    with pytest.raises(KnowledgeError):
        b.answer("laptop replacement")
    assert [k for _, k, _ in b.told.notices] == ["index-sync-failed", "index-sync-failed"]
    assert "stops answering" in b.told.notices[1][2]
    assert all("server closed" not in t for _, _, t in b.told.notices)
    now[0] += 100
    assert b.poll() == [] and len(b.told.notices) == 2  # told once
    monkeypatch.undo()
    assert b.poll() == ["hr"]
    assert b.kb.index_version("hr") == a.kb.index_version("hr")
    assert not any("four years" in t for _, _, t in b.answer("laptop replacement"))


def test_a_replica_that_cannot_read_the_published_versions_for_a_minute_stops_answering(
    replicas: tuple[Replica, Replica], dept: Department, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``kb_current`` itself unreadable (not one version's rows): after the same grace as a
    failing sync, the replica cannot know whether a newer version revoked access, so it
    stops answering from the department, tells the admins once, and on recovery serves
    whatever is published then: the revoking version, never the one it paused."""
    import psycopg

    from bot.knowledge import pg_sync

    a, b = replicas
    a.kb.refresh(dept)
    b.poll()
    now = [1000.0]
    b.hook.sync.clock = lambda: now[0]

    def lost() -> dict[str, str]:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(b.hook.sync, "currents", lost)
    assert b.poll() == []
    now[0] += pg_sync.FAIL_CLOSED_SECONDS - 1
    assert b.poll() == [] and b.answer("laptop replacement")  # still within the grace
    (folder / "laptops.md").unlink()  # meanwhile another replica publishes a revocation
    a.kb.refresh(dept)
    now[0] += 1
    assert b.poll() == []
    assert b.kb.index_version("hr") is None
    with pytest.raises(KnowledgeError):
        b.answer("laptop replacement")
    assert [k for _, k, _ in b.told.notices] == ["index-sync-failed"]
    assert "stops answering" in b.told.notices[0][2]
    assert all("server closed" not in t for _, _, t in b.told.notices)
    now[0] += 100
    assert b.poll() == [] and len(b.told.notices) == 1  # told once
    monkeypatch.undo()
    assert b.poll() == ["hr"]
    assert b.kb.index_version("hr") == a.kb.index_version("hr")
    assert not any("four years" in t for _, _, t in b.answer("laptop replacement"))


def test_after_an_outage_with_nothing_new_published_the_paused_version_serves_again(
    replicas: tuple[Replica, Replica], dept: Department, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from bot.knowledge import pg_sync

    a, b = replicas
    a.kb.refresh(dept)
    b.poll()
    served = b.kb.index_version("hr")
    now = [1000.0]
    b.hook.sync.clock = lambda: now[0]

    def lost() -> dict[str, str]:
        raise psycopg.OperationalError("could not connect")

    monkeypatch.setattr(b.hook.sync, "currents", lost)
    b.poll()
    now[0] += pg_sync.FAIL_CLOSED_SECONDS
    b.poll()
    assert b.kb.index_version("hr") is None
    monkeypatch.undo()
    assert b.poll() == ["hr"]
    assert b.kb.index_version("hr") == served
    assert any("four years" in t for _, _, t in b.answer("laptop replacement"))
    assert "hr" not in b.hook.sync.closed
