"""Outbound activities: ``render``'s plain dicts as botbuilder ``Activity`` objects, and posting text.

``render`` stays pure (no botbuilder import), so something has to turn its dicts into
``Activity`` objects without losing fields msrest does not know about (the AI entity's
"@type" and "citation"). Every module that posts in a turn (``turns``, ``commands``,
``private``, and ``bot`` for its last-resort apology) goes through here, so that
conversion lives in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, Entity

from bot.adapters.teams import render

log = logging.getLogger(__name__)


class _RawEntity(Entity):
    """An Entity that keeps every JSON field when serialized (the AI entity needs "@type", "citation")."""

    _attribute_map = {  # noqa: RUF012 - msrest reads this class attribute
        "type": {"key": "type", "type": "str"},
        "additional_properties": {"key": "", "type": "{object}"},
    }


def to_activity(data: Mapping[str, Any]) -> Activity:
    """A botbuilder Activity from one of ``render``'s dicts, entities kept whole."""
    fields = dict(data)
    entities = fields.pop("entities", None) or []
    activity = Activity().deserialize(fields)
    if entities:
        activity.entities = [
            _RawEntity(type=e["type"], additional_properties={k: v for k, v in e.items() if k != "type"})
            for e in entities
        ]
    return activity


async def say(ctx: TurnContext, text: str) -> str | None:
    """Post one text message in the turn's conversation; its id, if the connector gave one."""
    response = await ctx.send_activity(to_activity(render.text_activity(text)))
    return response.id if response is not None else None


async def update(ctx: TurnContext, message_id: str, text: str) -> None:
    """Replace a posted text message (refresh progress); a failure is logged, never raised."""
    activity = to_activity(render.text_activity(text))
    activity.id = message_id
    try:
        await ctx.update_activity(activity)
    except Exception:
        log.warning("progress update failed", exc_info=True)
