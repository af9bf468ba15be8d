"""The adapters' in-memory conversation state stays bounded."""

from __future__ import annotations

from bot.store.conversations import BoundedMap, History, ReplyIndex


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
