"""The Teams conversation state behaves the same on SQLite (``teams-state.sqlite3``) and on
PostgreSQL (migration 0006, every replica sharing it): history with labels, reply cards,
references, expiry and caps, retention, the person links, and a privacy erase that finds
every row of the person directly, with text sealed at rest."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from bot.core.types import Answer, Citation, Classification, Turn
from bot.governance.vault import Vault, subject_id
from bot.store.conversations import ConversationStore
from bot.store.teams_state import Limits, TeamsState, TeamsStore

from .conftest import Backend

Open = Callable[..., TeamsStore]


@pytest.fixture
def teams(backend: Backend) -> Open:
    vault = backend.vault()

    def open_store(*, limits: Limits | None = None, clock: Callable[[], float] | None = None) -> TeamsStore:
        kw: dict[str, object] = {"limits": limits or Limits(), "vault": vault}
        if clock is not None:
            kw["clock"] = clock
        if backend.db is None:
            return TeamsState(path=backend.home / TeamsState.FILE, **kw)  # type: ignore[arg-type]
        from bot.store.pg_teams_state import PgTeamsState

        return PgTeamsState(backend.db, **kw)  # type: ignore[arg-type]

    return open_store


def _raw(backend: Backend, sql: str) -> list[tuple[object, ...]]:
    return backend.sql(TeamsState.FILE, sql)


def test_history_keeps_the_last_turns_with_their_labels(teams: Open) -> None:
    store = teams(limits=Limits(history_turns=4))
    for i in range(3):
        store.history.add(("conv", "u1"), f"q{i}", f"a{i}", Classification.CONFIDENTIAL)
    store.history.extend(("conv", "u1"), [Turn(role="assistant", text="unlabelled")])
    got = store.history.get(("conv", "u1"))
    assert [t.text for t in got] == ["a1", "q2", "a2", "unlabelled"]
    assert [t.label for t in got] == [Classification.CONFIDENTIAL, None, Classification.CONFIDENTIAL, None]
    assert store.history.get(("conv", "u2")) == ()


def test_two_replicas_share_the_state(teams: Open) -> None:
    a, b = teams(), teams()
    a.history.add(("conv", "u1"), "q", "a", Classification.PUBLIC)
    a.references.put(("teams", "t", "u1"), {"conversation": {"id": "a:1"}})
    a.replies.remember("m1", "rid1", {"card": 1})
    assert [t.text for t in b.history.get(("conv", "u1"))] == ["q", "a"]
    assert b.references.get(("teams", "t", "u1")) == {"conversation": {"id": "a:1"}}
    assert (b.replies.request_id("m1"), b.replies.payload("m1")) == ("rid1", {"card": 1})
    b.replies.remember("m1", "rid2")  # replaced, not duplicated
    assert a.replies.request_id("m1") == "rid2" and a.replies.payload("m1") is None


def test_reply_payloads_keep_answers_for_card_updates(teams: Open) -> None:
    store = teams()
    answer = Answer(
        text="25 days [1]",
        request_id="rid1",
        citations=(Citation(n=1, title="Time off", path="t.md", department="hr", score=0.9, snippet="25"),),
        classification=Classification.CONFIDENTIAL,
        audiences=((("group", "hr"),),),
    )
    store.replies.remember("m1", "rid1", answer)
    store.replies.remember("m3", "rid3", object())  # not JSON-able: the request id is still kept
    again = teams()
    assert again.replies.payload("m1") == answer
    assert (again.replies.request_id("m3"), again.replies.payload("m3")) == ("rid3", None)


def test_rows_expire_and_caps_hold(teams: Open) -> None:
    now = [1000.0]
    store = teams(limits=Limits(history_conversations=2, references=2), clock=lambda: now[0])
    store.history.add("c1", "q", "a")
    store.replies.remember("m1", "rid1")
    for i in range(3):
        now[0] += 1
        store.references.put(("teams", "t", f"u{i}"), {"n": i})
    store.history.add("c2", "q", "a")
    store.history.add("c3", "q", "a")
    store.cleanup()
    assert store.history.get("c1") == () and store.history.get("c3") != ()
    assert store.references.get(("teams", "t", "u0")) is None and store.references.get(("teams", "t", "u2"))
    now[0] += Limits().history_ttl + 1
    assert store.history.get("c3") == () and store.replies.request_id("m1") == "rid1"
    now[0] += Limits().reply_ttl
    assert store.replies.request_id("m1") is None


def test_retention_purges_each_kind_in_batches(teams: Open) -> None:
    store = teams()
    for i in range(7):
        store.history.add(f"c{i}", "q", "a")
        store.replies.remember(f"m{i}", f"r{i}")
    future = datetime.fromtimestamp(store.now() + 10, UTC)
    assert store.purge_older_than("history", future, batch=3) == 14
    assert store.purge_older_than("replies", future, batch=3) == 7
    assert store.purge_older_than("references", future) == 0
    with pytest.raises(ValueError):
        store.purge_older_than("people", future)


def test_erase_finds_the_person_directly_and_leaves_others(teams: Open, backend: Backend) -> None:
    """The link alone leads to the reference: no history row names a request of theirs."""
    store = teams()
    convo = ConversationStore.over(store)
    convo.link_person("aad-pat", "Pat@Example.com")
    convo.link_person("aad-sam", "sam@example.com")
    store.references.put(("teams", "t", "aad-pat"), {"user": {"id": "29:pat"}})
    store.history.add(("19:chan", "aad-pat"), "zebrafinch question", "answer")
    store.history.add(("19:chan", "aad-sam"), "q", "a")
    store.replies.remember("m1", "rid-pat")
    assert store.users_for_person("pat@example.com") == ["aad-pat"]
    assert _raw(backend, "select person from teams_people order by user_id")[0] == (
        subject_id("pat@example.com"),
    )
    for table, column in (("teams_history", "text"), ("teams_references", "reference")):
        assert all(b"zebrafinch" not in bytes(r[0]) for r in _raw(backend, f"select {column} from {table}"))

    export = store.export(store.users_of("pat@example.com", ["rid-pat"]), ["rid-pat"])
    assert [h["text"] for h in export["history"]] == ["zebrafinch question", "answer"]
    assert export["references"][0]["reference"] == {"user": {"id": "29:pat"}}
    assert export["accounts"] == ["aad-pat"] and export["replies"][0]["request_id"] == "rid-pat"

    counts = store.erase(store.users_of("pat@example.com", ["rid-pat"]), ["rid-pat"], email="pat@example.com")
    assert counts == {"history": 2, "references": 1, "replies": 1}
    assert store.users_for_person("pat@example.com") == []
    assert store.references.get(("teams", "t", "aad-pat")) is None
    assert store.history.get(("19:chan", "aad-pat")) == ()
    assert [t.text for t in store.history.get(("19:chan", "aad-sam"))] == ["q", "a"]
    assert store.users_for_person("sam@example.com") == ["aad-sam"]
    assert isinstance(store.vault, Vault) and not store.vault.has_key("teams:aad-pat")


def test_a_link_is_written_once_a_day(teams: Open, backend: Backend) -> None:
    now = [1000.0]
    store = teams(clock=lambda: now[0])
    store.people.link("aad-pat", "pat@example.com")
    store.people.link("aad-pat", "pat@example.com")  # the same: no write
    assert _raw(backend, "select at from teams_people") == [(1000.0,)]
    now[0] += 2 * 24 * 3600
    store.people.link("aad-pat", "pat@example.com")
    assert _raw(backend, "select at from teams_people") == [(now[0],)]
    store.people.link("aad-pat", None)  # no e-mail known: nothing
    store.people.link("", "pat@example.com")
    assert len(_raw(backend, "select user_id from teams_people")) == 1
