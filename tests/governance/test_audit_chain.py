"""The HMAC-chained audit log: every kind of tampering done with SQL alone is caught by
``verify``, which names the first bad row; concurrent processes keep one chain."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.ports import AuditEntry
from bot.errors import StoreError
from bot.governance.chain import GENESIS, Chain, load_key
from bot.store.audit import SqliteAuditLog

KEY = "11" * 32
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def entry(i: int, **kw: object) -> AuditEntry:
    base: dict[str, object] = dict(
        request_id=f"r{i}",
        time=T0 + timedelta(hours=i),
        user="alice@example.com",
        platform="cli",
        decision="allowed",
        rule="ask:*@example.com",
        status="answered",
        department="hr",
        question=f"question {i}",
        doc_ids=("hr/time-off.md",),
        cost=0,  # an int where the column is REAL: the MAC must not depend on it
        pii_detected='{"email": 1}' if i % 3 == 0 else "",
    )
    base.update(kw)
    return AuditEntry(**base)  # type: ignore[arg-type]


def open_log(path: Path) -> SqliteAuditLog:
    return SqliteAuditLog(path=path / "audit.db", env={"DEPTBOT_AUDIT_KEY": KEY})


@pytest.fixture
def log(tmp_path: Path) -> SqliteAuditLog:
    log = open_log(tmp_path)
    for i in range(1, 11):
        log.record(entry(i))
    return log


def sql(log: SqliteAuditLog, *statements: str) -> None:
    conn = sqlite3.connect(log.path)
    for s in statements:
        conn.execute(s)
    conn.commit()
    conn.close()


def test_an_untouched_log_verifies_with_its_head_and_checkpoint_line(log: SqliteAuditLog) -> None:
    rep = log.verify()
    assert rep.ok and rep.rows == 10 and rep.legacy == 0 and rep.head_seq == 10
    head = sqlite3.connect(log.path).execute("select row_hash from requests where seq = 10").fetchone()[0]
    assert rep.head_mac == head and rep.checkpoint is not None
    assert rep.checkpoint.line().startswith(f"deptbot-audit-checkpoint seq=10 mac={head} count=10 ")


def test_each_row_links_to_the_previous_mac(log: SqliteAuditLog) -> None:
    rows = (
        sqlite3.connect(log.path).execute("select prev_hash, row_hash from requests order by seq").fetchall()
    )
    assert rows[0][0] == GENESIS.hex()
    assert all(rows[i][0] == rows[i - 1][1] for i in range(1, len(rows)))
    assert len({r[1] for r in rows}) == 10


def test_an_edited_row_is_named(log: SqliteAuditLog) -> None:
    sql(log, "update requests set decision = 'denied' where seq = 4")
    rep = log.verify()
    assert not rep.ok and rep.bad_seq == 4 and rep.kind == "edited"


def test_an_edit_that_also_rewrites_its_own_mac_without_the_key_is_caught(log: SqliteAuditLog) -> None:
    sql(log, "update requests set cost = 99.0, row_hash = '" + "ab" * 32 + "' where seq = 6")
    rep = log.verify()
    assert not rep.ok and rep.bad_seq == 6 and rep.kind == "edited"


def test_a_deleted_row_leaves_a_named_gap(log: SqliteAuditLog) -> None:
    sql(log, "delete from requests where seq = 5")
    rep = log.verify()
    assert not rep.ok and rep.bad_seq == 5 and rep.kind == "deleted"


def test_a_deleted_row_hidden_by_renumbering_is_named(log: SqliteAuditLog) -> None:
    sql(
        log,
        "delete from requests where seq = 5",
        *[f"update requests set seq = {s - 1} where seq = {s}" for s in range(6, 11)],
    )
    rep = log.verify()
    assert not rep.ok and rep.bad_seq == 5 and rep.kind == "deleted"


def test_an_inserted_row_is_named(log: SqliteAuditLog) -> None:
    prev = sqlite3.connect(log.path).execute("select row_hash from requests where seq = 4").fetchone()[0]
    sql(
        log,
        *[f"update requests set seq = {s + 1} where seq = {s}" for s in range(10, 4, -1)],
        "insert into requests (seq, request_id, time, user, platform, decision, rule, status, "
        "prev_hash, row_hash) values (5, 'forged', '2026-01-01', 'mallory@example.com', 'cli', "
        f"'allowed', 'x', 'answered', '{prev}', '{'cd' * 32}')",
    )
    rep = log.verify()
    assert not rep.ok and rep.bad_seq == 5 and rep.kind == "inserted"


def test_a_row_appended_without_a_mac_is_named(log: SqliteAuditLog) -> None:
    sql(
        log,
        "insert into requests (seq, request_id, time, user, platform, decision, rule, status) "
        "values (11, 'forged', '2026-01-01', 'mallory@example.com', 'cli', 'allowed', 'x', 'answered')",
    )
    rep = log.verify()
    assert not rep.ok and rep.bad_seq == 11 and rep.kind == "inserted"


def test_reordered_rows_are_named(log: SqliteAuditLog) -> None:
    sql(
        log,
        "update requests set seq = 100 where seq = 5",
        "update requests set seq = 5 where seq = 6",
        "update requests set seq = 6 where seq = 100",
    )
    rep = log.verify()
    assert not rep.ok and rep.bad_seq == 5 and rep.kind == "reordered"
    assert "after row 6" in rep.problem


def test_a_truncated_tail_is_caught_against_a_checkpoint(log: SqliteAuditLog) -> None:
    cp = log.checkpoint()
    assert (cp.seq, cp.count, cp.kind) == (10, 10, "log")
    sql(log, "delete from requests where seq >= 8")
    rep = log.verify()
    assert not rep.ok and rep.bad_seq == 8 and rep.kind == "truncated"


def test_a_truncated_tail_is_caught_against_a_checkpoint_kept_elsewhere(log: SqliteAuditLog) -> None:
    head = log.verify()
    sql(log, "delete from requests where seq >= 9", "delete from checkpoints where kind = 'log'")
    assert log.verify().ok  # nothing stored here can tell: that is what the shipped line is for
    rep = log.verify(expect=(head.head_seq, head.head_mac))
    assert not rep.ok and rep.bad_seq == 9 and rep.kind == "truncated"


def test_a_rewritten_chain_does_not_match_an_earlier_checkpoint(log: SqliteAuditLog) -> None:
    log.checkpoint()
    sql(log, "update checkpoints set mac = '" + "ee" * 32 + "' where kind = 'log'")
    rep = log.verify()
    assert not rep.ok and rep.kind == "checkpoint"  # its signature no longer matches


def test_deleting_the_oldest_rows_without_a_checkpoint_is_caught(log: SqliteAuditLog) -> None:
    sql(log, "delete from requests where seq <= 3")
    rep = log.verify()
    assert not rep.ok and rep.bad_seq == 1 and rep.kind == "deleted"


def test_a_forged_purge_checkpoint_does_not_excuse_deleted_rows(log: SqliteAuditLog) -> None:
    mac = sqlite3.connect(log.path).execute("select row_hash from requests where seq = 3").fetchone()[0]
    sql(
        log,
        "insert into checkpoints (seq, kind, mac, count, time, sig) "
        f"values (3, 'purge', '{mac}', 3, 'x', '{'00' * 32}')",
        "delete from requests where seq <= 3",
    )
    rep = log.verify()
    assert not rep.ok and rep.kind == "checkpoint" and rep.bad_seq == 3


def test_deleting_the_chain_start_record_is_caught(log: SqliteAuditLog) -> None:
    sql(log, "delete from checkpoints where kind = 'start'")
    rep = log.verify()
    assert not rep.ok and rep.kind == "checkpoint"


def test_another_key_verifies_nothing(log: SqliteAuditLog) -> None:
    other = SqliteAuditLog(path=log.path, env={"DEPTBOT_AUDIT_KEY": "22" * 32})
    assert not other.verify().ok


def test_pseudonymizing_a_person_keeps_the_chain_valid(log: SqliteAuditLog) -> None:
    log.record(entry(11, user="Bob@Example.com"))
    alias = log.pseudonym("bob@example.com")
    assert alias.startswith("u-") and len(alias) == 18 and alias == log.pseudonym("BOB@example.com")
    log.record_feedback("r11", "bob@example.com", "up")
    assert log.pseudonymize("bob@example.com") == 2
    users = [
        r[0] for r in sqlite3.connect(log.path).execute("select user from requests where request_id = 'r11'")
    ]
    assert users == [alias]
    rep = log.verify()
    assert rep.ok and rep.rows == 11


def test_a_version_1_database_keeps_its_rows_as_unchained_legacy(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "audit.db")
    conn.executescript(
        """
        create table requests (seq integer primary key, request_id text, time text, user text,
          platform text, channel text, department text, template text, decision text, rule text,
          status text, doc_ids text, generator text, model text, route text, route_reason text,
          input_tokens integer, output_tokens integer, cost float, confidence float,
          retrieve_ms float, generate_ms float, latency_ms float, cache_hit integer,
          error text, prev_hash text, row_hash text);
        create unique index idx_requests_request_id on requests (request_id);
        create table request_text (request_id text primary key, question text);
        create table feedback (request_id text, user text, value text, reason text, time text,
          primary key (request_id, user));
        insert into requests (seq, request_id, time, user, platform, decision, rule, status, doc_ids)
          values (1, 'old1', '2025-01-01', 'a@example.com', 'cli', 'allowed', 'r', 'answered', '[]'),
                 (2, 'old2', '2025-01-02', 'a@example.com', 'cli', 'denied', 'r', 'denied', '[]');
        pragma user_version = 1;
        """
    )
    conn.close()
    log = open_log(tmp_path)
    cols = {r[1] for r in sqlite3.connect(log.path).execute("pragma table_info(requests)")}
    assert "pii_detected" in cols
    log.record(entry(1))
    log.record(entry(2))
    rep = log.verify()
    assert rep.ok and rep.legacy == 2 and rep.rows == 2 and rep.first_seq == 3
    # legacy rows are not vouched for, but rows after them are: an edit there is caught
    sql(log, "update requests set status = 'x' where seq = 4")
    assert log.verify().bad_seq == 4
    # reopening never moves the chain start (that would turn chained rows into "legacy")
    assert open_log(tmp_path).verify().bad_seq == 4


def test_the_key_file_is_created_private_and_never_stored_in_the_database(tmp_path: Path) -> None:
    log = SqliteAuditLog(path=tmp_path / "state" / "audit.db", env={})
    log.record(entry(1))
    key_file = tmp_path / "state" / "keys" / "audit.key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and key_file.parent.stat().st_mode & 0o777 == 0o700
    secret = load_key({}, key_file).secret
    assert secret.hex() not in (tmp_path / "state" / "audit.db").read_bytes().hex()
    assert log.verify().ok
    with pytest.raises(Exception, match="does not exist"):
        load_key({}, tmp_path / "missing.key", create=False)


def test_mac_input_is_canonical_json_of_the_content_with_the_pseudonym() -> None:
    chain = Chain(bytes.fromhex(KEY))
    row = {"seq": 5, "prev_hash": "x", "row_hash": "y", "user": "A@B.C", "b": 1, "a": None, "c": "é"}
    assert chain.canonical(row) == ('{"b":1,"c":"é","user":"' + chain.pseudonym("a@b.c") + '"}').encode()


def _writer(path: str, start: int, n: int) -> None:
    log = SqliteAuditLog(path=Path(path), env={})  # both race to create the key file too
    for i in range(start, start + n):
        log.record(entry(i))
    log.close()


def test_two_processes_writing_at_once_keep_one_valid_chain(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    path = str(tmp_path / "audit.db")
    procs = [ctx.Process(target=_writer, args=(path, k * 1000, 150)) for k in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    log = SqliteAuditLog(path=Path(path), env={})
    rep = log.verify()
    assert rep.ok and rep.rows == 300 and rep.head_seq == 300
    writers = [r[0][1] for r in sqlite3.connect(path).execute("select request_id from requests order by seq")]
    assert len(set(writers)) == 2  # both wrote; interleaving is up to the scheduler


def test_reading_a_new_log_creates_no_key_and_the_first_write_signs_the_start(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "audit.key"
    reader = SqliteAuditLog(path=tmp_path / "audit.db", env={}, key_file=key_file)
    assert reader.tail(5) == [] and not key_file.exists()
    writer = SqliteAuditLog(path=tmp_path / "audit.db", env={"DEPTBOT_AUDIT_KEY": KEY})
    writer.record(entry(1))
    assert writer.verify().ok
    sql(writer, "update checkpoints set sig = '' where kind = 'start'")
    rep = writer.verify()
    assert not rep.ok and rep.kind == "checkpoint"


def test_pseudonymizing_with_another_key_is_refused(log: SqliteAuditLog) -> None:
    other = SqliteAuditLog(path=log.path, env={"DEPTBOT_AUDIT_KEY": "22" * 32})
    with pytest.raises(StoreError, match="not the one the audit rows were chained with"):
        other.pseudonymize("alice@example.com")
    assert log.verify().ok
