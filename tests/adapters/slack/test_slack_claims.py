"""The Slack adapter marks an event's claim done (``bot.store.dedup``): a question's once its
reply is posted, any other event's at once. Until then the claim is only a lease, which
another replica may take over when it lapses (tests/store/test_replicas_serve.py step b)."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
