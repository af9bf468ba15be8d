"""The adapters' conversation state stays bounded, in memory and in SQLite (restart-safe)."""

from __future__ import annotations

from pathlib import Path

from bot.core.types import Answer, Citation, Classification, Turn
from bot.store.conversations import BoundedMap, ConversationStore, History, ReplyIndex
from bot.store.teams_state import Limits, TeamsState


def test_bounded_map_forgets_the_least_recently_used() -> None:
    m: BoundedMap[str, int] = BoundedMap(limit=2)
    m.put("a", 1)
    m.put("b", 2)
    assert m.get("a") == 1  # "a" is now the most recent
    m.put("c", 3)
    assert (m.get("a"), m.get("b"), m.get("c"), len(m)) == (1, None, 3, 2)


def test_history_keeps_the_last_turns_per_conversation() -> None:
    h = History(turns=4, conversations=2)
    for i in range(5):
        h.add("c1", f"q{i}", f"a{i}")
    assert [t.text for t in h.get("c1")] == ["q3", "a3", "q4", "a4"]
    assert h.get("other") == ()


def test_reply_index_maps_message_ids_to_request_ids() -> None:
    r = ReplyIndex(limit=10)
    r.remember("msg-1", "abc123", payload={"card": 1})
    r.remember("", "ignored")
    assert (r.request_id("msg-1"), r.payload("msg-1"), r.request_id(None), r.request_id("nope")) == (
        "abc123",
        {"card": 1},
        None,
        None,
    )


# ── the SQLite store the Teams adapter uses (survives a restart) ─────────────────────────


def test_labels_round_trip_exactly_across_reopen(tmp_path: Path) -> None:
    store = ConversationStore.in_state_dir(tmp_path)
    turns = (
        Turn("user", "q"),
        Turn("assistant", "unlabelled"),  # None stays None: the core treats it as restricted
        *(Turn("assistant", c.label, label=c) for c in Classification),
    )
    store.history.extend(("conv", "alice"), turns)
    store.close()
    again = ConversationStore.in_state_dir(tmp_path, history_turns=10)
    assert again.history.get(("conv", "alice")) == turns
    assert again.history.get(("conv", "bob")) == ()
    again.close()


def test_persistent_history_keeps_the_last_turns_and_conversations(tmp_path: Path) -> None:
    state = TeamsState(path=tmp_path / "s.sqlite3", limits=Limits(history_turns=4, history_conversations=2))
    for i in range(5):
        state.history.add("c1", f"q{i}", f"a{i}", Classification.PUBLIC)
    assert [t.text for t in state.history.get("c1")] == ["q3", "a3", "q4", "a4"]
    state.history.add("c2", "q", "a")
    state.history.add("c3", "q", "a")
    state.cleanup()
    assert state.history.get("c1") == () and state.history.get("c3") != ()


def test_rows_expire_after_their_ttl(tmp_path: Path) -> None:
    now = [1000.0]
    state = TeamsState(path=tmp_path / "s.sqlite3", clock=lambda: now[0])
    state.history.add("c", "q", "a")
    state.replies.remember("m1", "rid1")
    state.references.put(("teams", "t", "u"), {"conversation": {"id": "a:1"}})
    now[0] += Limits().history_ttl + 1
    assert state.history.get("c") == () and state.replies.request_id("m1") == "rid1"
    now[0] += Limits().reply_ttl
    assert state.replies.request_id("m1") is None
    assert state.references.get(("teams", "t", "u")) == {"conversation": {"id": "a:1"}}
    state.cleanup()
    now[0] += Limits().reference_ttl
    assert state.references.get(("teams", "t", "u")) is None


def test_reply_payloads_keep_answers_for_card_updates(tmp_path: Path) -> None:
    state = TeamsState(path=tmp_path / "s.sqlite3")
    answer = Answer(
        text="25 days [1]",
        request_id="rid1",
        citations=(
            Citation(
                n=1, title="Time off", path="time-off.md", department="hr", score=0.9, snippet="25 days"
            ),
        ),
        classification=Classification.CONFIDENTIAL,
        audiences=((("group", "hr"),),),
    )
    state.replies.remember("m1", "rid1", answer)
    state.replies.remember("m2", "rid2", {"card": 1})
    state.replies.remember("m3", "rid3", object())  # not JSON-able: the request id is still kept
    state.replies.remember("", "ignored")
    again = TeamsState(path=tmp_path / "s.sqlite3")
    assert again.replies.payload("m1") == answer
    assert (again.replies.payload("m2"), again.replies.request_id("m3"), again.replies.payload("m3")) == (
        {"card": 1},
        "rid3",
        None,
    )
    assert again.replies.request_id(None) is None and again.replies.request_id("") is None
