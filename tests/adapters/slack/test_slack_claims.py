"""The Slack adapter marks an event's claim done (``bot.store.dedup``): a question's once its
reply is posted, any other event's at once. Until then the claim is only a lease, which
another replica may take over when it lapses (tests/store/test_replicas_serve.py step b)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.core.pipeline import Assistant
from bot.store.dedup import DedupStore
from tests.adapters.slack.conftest import SlackHarness, mention


def _claimed(state: Path, event_id: str) -> tuple[str, float, bool] | None:
    store = DedupStore.in_state_dir(state)
    try:
        return store.claimed(f"slack:{event_id}")
    finally:
        store.close()


def test_claims_are_done_once_answered_or_when_nothing_is_to_be_said(
    assistant: Assistant, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    h = SlackHarness(assistant, state)

    async def main() -> None:
        async with h:
            await h.event(mention("How many vacation days do I get?"), event_id="EvQUESTION")
            await h.stub.wait_for("reactions.remove")  # the 👀 comes off after the claim is done
            assert len(h.stub.to("chat.postMessage")) == 1
            chatter = {"type": "message", "channel_type": "group", "user": "UALICE", "channel": "C0HRHELP"}
            await h.event({**chatter, "ts": "1700000009.000100", "text": "lunch?"}, event_id="EvCHATTER")
            joined = {"type": "member_joined_channel", "user": "UGRACE", "channel": "C0HRHELP", "team": "T1"}
            await h.event(joined, event_id="EvMEMBER")
            await asyncio.sleep(0.3)  # the listeners run after the acknowledgement

    asyncio.run(main())
    for event_id in ("EvQUESTION", "EvCHATTER", "EvMEMBER"):
        claimed = _claimed(state, event_id)
        assert claimed is not None and claimed[2], f"{event_id}: {claimed}"
    assert len(h.stub.to("chat.postMessage")) == 1


def test_an_event_taken_over_while_queued_is_not_answered_twice(
    assistant: Assistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer renews its claim as it leaves the in-flight queue; when another replica
    took the event over meanwhile (``renew`` is False) this one posts nothing."""
    renewed: list[str] = []

    def taken_over(self: DedupStore, key: str) -> bool:
        renewed.append(key)
        return False

    monkeypatch.setattr(DedupStore, "renew", taken_over)
    h = SlackHarness(assistant, tmp_path / "state")

    async def main() -> None:
        async with h:
            await h.event(mention("How many vacation days do I get?"), event_id="EvTAKEN")
            await asyncio.sleep(0.5)  # the listener runs after the acknowledgement

    asyncio.run(main())
    assert renewed == ["slack:EvTAKEN"]
    assert h.stub.to("chat.postMessage") == []
    claimed = _claimed(tmp_path / "state", "EvTAKEN")  # the new holder's claim stays open:
    assert claimed is not None and not claimed[2]  # if it dies, a redelivery still answers
