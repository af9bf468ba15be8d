"""Slack's published Block Kit limits, and ``problems``: what in a payload breaks them.

The stub Web API runs ``problems`` on every call deptbot makes (so every Slack test checks
it), and the renderer in ``blocks`` takes its numbers from here. Sources, docs.slack.dev:

* reference/block-kit/blocks — "up to 50 blocks in each message, and 100 blocks in modals
  or Home tabs";
* section block — ``text`` at most 3,000 characters; text object — "minimum length is 1
  and maximum length is 3000"; header block — at most 150; context block — at most 10
  elements; actions block — at most 25 elements; ``block_id`` at most 255;
* button element — ``text`` at most 75, ``value`` 2,000, ``action_id`` 255,
  ``accessibility_label`` 75;
* reference/views/modal-views — ``title``, ``submit`` and ``close`` at most 24 characters,
  ``private_metadata`` 3,000;
* chat.postMessage — with ``blocks``, ``text`` is the notification and screen-reader
  fallback; deptbot always sends one with words in it (slack_sdk warns otherwise);
* table block — ``rows`` at most 100, each row at most 20 cells of type ``raw_text`` or
  ``rich_text``; ``column_settings`` at most 20 items (``align`` left/center/right,
  ``is_wrapped`` boolean); one table per message (``only_one_table_allowed``).

Blank text (only spaces or newlines) counts as empty: it shows nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
TEXT = 3000  # any text object, and a section's text
HEADER = 150
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
BLOCK_ID = 255
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ACTION_ID = 255
ACCESSIBILITY_LABEL = 75
VIEW_BUTTON = 24  # a modal's title, submit and close
PRIVATE_METADATA = 3000
TABLE_ROWS = 100
TABLE_CELLS = 20
COLUMN_SETTINGS = 20
ALIGN = ("left", "center", "right")

MESSAGE_METHODS = frozenset({"chat.postMessage", "chat.postEphemeral", "chat.update", "response_url"})
VIEW_METHODS = frozenset({"views.publish", "views.open", "views.update", "views.push"})


def problems(method: str, args: Mapping[str, Any]) -> list[str]:
    """Each broken limit in one Web API call (``method``) or ``response_url`` post, in words;
    [] for a valid payload and for methods that carry no message or view."""
    if method in MESSAGE_METHODS:
        found = []
        text = args.get("text")
        if not isinstance(text, str) or not text.strip():
            found.append("top-level text is missing or blank")
        blocks = args.get("blocks")
        if blocks is not None:
            found += _blocks(blocks, MESSAGE_BLOCKS)
            tables = sum(1 for b in blocks if isinstance(b, Mapping) and b.get("type") == "table")
            if tables > 1:
                found.append(f"{tables} table blocks (one per message)")
        return found
    if method in VIEW_METHODS:
        view = args.get("view")
        if not isinstance(view, Mapping):
            return ["view is missing"]
        found = _blocks(view.get("blocks"), VIEW_BLOCKS)
        if view.get("type") == "modal":
            found += _text(view.get("title"), "modal title", VIEW_BUTTON)
            for key in ("submit", "close"):
                if key in view:
                    found += _text(view[key], f"modal {key}", VIEW_BUTTON)
        if len(str(view.get("private_metadata", ""))) > PRIVATE_METADATA:
            found.append(f"private_metadata over {PRIVATE_METADATA} characters")
        return found
    return []


def _blocks(blocks: object, limit: int) -> list[str]:
    if not isinstance(blocks, Sequence) or isinstance(blocks, str) or not blocks:
        return ["blocks must be a non-empty list"]
    found = [f"{len(blocks)} blocks (at most {limit})"] if len(blocks) > limit else []
    for i, block in enumerate(blocks):
        found += [f"block {i}: {p}" for p in _block(block)]
    return found


def _block(block: object) -> list[str]:
    if not isinstance(block, Mapping):
        return ["not an object"]
    kind = block.get("type")
    found = []
    if len(str(block.get("block_id", ""))) > BLOCK_ID:
        found.append(f"block_id over {BLOCK_ID} characters")
    if kind == "section":
        if "text" in block or "fields" not in block:
            found += _text(block.get("text"), "section text", TEXT)
        for field in block.get("fields") or []:
            found += _text(field, "section field", 2000)
    elif kind == "header":
        found += _text(block.get("text"), "header text", HEADER)
    elif kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= CONTEXT_ELEMENTS:
            found.append(f"context needs 1 to {CONTEXT_ELEMENTS} elements")
        else:
            for e in elements:
                if isinstance(e, Mapping) and e.get("type") in ("mrkdwn", "plain_text"):
                    found += _text(e, "context text", TEXT)
    elif kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= ACTIONS_ELEMENTS:
            found.append(f"actions needs 1 to {ACTIONS_ELEMENTS} elements")
        else:
            for e in elements:
                if isinstance(e, Mapping) and e.get("type") == "button":
                    found += _button(e)
    elif kind == "input":
        found += _text(block.get("label"), "input label", 2000)
    elif kind == "table":
        found += _table(block)
    return found


def _table(block: Mapping[str, Any]) -> list[str]:
    rows = block.get("rows")
    if not isinstance(rows, list) or not 1 <= len(rows) <= TABLE_ROWS:
        return [f"table needs 1 to {TABLE_ROWS} rows"]
    found = []
    for r, row in enumerate(rows):
        if not isinstance(row, list) or not 1 <= len(row) <= TABLE_CELLS:
            found.append(f"table row {r} needs 1 to {TABLE_CELLS} cells")
            continue
        for c, cell in enumerate(row):
            kind = cell.get("type") if isinstance(cell, Mapping) else None
            if kind == "raw_text":
                if not str(cell.get("text", "")).strip():
                    found.append(f"table cell {r},{c} is empty")
            elif kind == "rich_text":
                if not isinstance(cell.get("elements"), list) or not cell["elements"]:
                    found.append(f"table cell {r},{c} has no elements")
            else:
                found.append(f"table cell {r},{c} is not raw_text or rich_text")
    settings = block.get("column_settings", [])
    if not isinstance(settings, list) or len(settings) > COLUMN_SETTINGS:
        found.append(f"column_settings must be a list of at most {COLUMN_SETTINGS}")
    else:
        for setting in settings:
            if not isinstance(setting, Mapping) or setting.get("align", "left") not in ALIGN:
                found.append("column_settings align must be left, center or right")
            elif not isinstance(setting.get("is_wrapped", False), bool):
                found.append("column_settings is_wrapped must be a boolean")
    return found


def _button(button: Mapping[str, Any]) -> list[str]:
    found = _text(button.get("text"), "button text", BUTTON_TEXT)
    if len(str(button.get("value", ""))) > BUTTON_VALUE:
        found.append(f"button value over {BUTTON_VALUE} characters")
    if not 1 <= len(str(button.get("action_id", ""))) <= ACTION_ID:
        found.append(f"button action_id must be 1 to {ACTION_ID} characters")
    if len(str(button.get("accessibility_label", ""))) > ACCESSIBILITY_LABEL:
        found.append(f"button accessibility_label over {ACCESSIBILITY_LABEL} characters")
    return found


def _text(obj: object, what: str, limit: int) -> list[str]:
    """A text object: ``{"type": "mrkdwn"|"plain_text", "text": 1..limit visible characters}``."""
    if not isinstance(obj, Mapping) or obj.get("type") not in ("mrkdwn", "plain_text"):
        return [f"{what} is not a text object"]
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        return [f"{what} is empty"]
    if len(text) > limit:
        return [f"{what} is {len(text)} characters (at most {limit})"]
    return []
