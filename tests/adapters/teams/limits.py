"""What Teams accepts in a message the bot sends: the published limits, checked on every activity.

The fake Bot Connector (``conftest.FakeConnector``) runs ``problems`` on every activity the bot
posts or updates and answers 400 like Teams would, so every Teams test checks its payloads.

Sources (MicrosoftDocs/msteams-docs):

- ``bots/how-to/bot-messages-ai-generated-content.md``: one root ``https://schema.org/Message``
  entity; ``additionalType`` ``AIGeneratedContent``; at most 20 citations (more is a 400);
  ``citation.@type`` Claim, ``position`` integer, ``appearance.@type`` DigitalDocument,
  ``appearance.name`` at most 80 characters, ``abstract`` at most 160, at most three
  ``keywords`` of at most 28 characters each; an empty ``appearance`` is a 400.
- ``bots/how-to/format-your-bot-messages.md``: a message is at most 100 KB counted as
  UTF-16, and should stay within 80 KB.
- ``task-modules-and-cards/cards/cards-reference.md``: bots may send Adaptive Cards of
  version 1.5 or earlier.

Lengths are counted in UTF-16 code units, the stricter reading of "characters" (a JavaScript
client counts an emoji as two).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

AI_ENTITY = "https://schema.org/Message"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_MESSAGE_UTF16_BYTES = 80 * 1024
MAX_CLAIMS, NAME_CHARS, ABSTRACT_CHARS, MAX_KEYWORDS, KEYWORD_CHARS = 20, 80, 160, 3, 28
MAX_CARD_VERSION = (1, 5)
MARKER_RE = re.compile(r"\[(\d{1,3})\]")
# the card elements and actions deptbot uses; a new one must be added here on purpose
CARD_ELEMENTS = {"TextBlock", "FactSet", "Table"}
CARD_ACTIONS = {"Action.Submit", "Action.OpenUrl"}


def units(text: str) -> int:
    """Length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def problems(activity: Mapping[str, Any]) -> list[str]:
    """Everything in this outgoing activity that Teams would reject (or that breaks a published limit)."""
    if activity.get("type") != "message":
        return []
    found: list[str] = []
    size = len(json.dumps(activity, ensure_ascii=False).encode("utf-16-le"))
    if size > MAX_MESSAGE_UTF16_BYTES:
        found.append(f"message is {size} bytes as UTF-16 (keep within {MAX_MESSAGE_UTF16_BYTES})")
    text = activity.get("text")
    if text is not None and not isinstance(text, str):
        found.append("text must be a string")
    entities = activity.get("entities") or []
    roots = [e for e in entities if isinstance(e, Mapping) and e.get("type") == AI_ENTITY]
    if len(roots) > 1:
        found.append("more than one root message entity")
    for root in roots:
        found += _ai_entity(root, text if isinstance(text, str) else "")
    data = activity.get("channelData")
    if isinstance(data, Mapping) and not isinstance(data.get("feedbackLoopEnabled", False), bool):
        found.append("channelData.feedbackLoopEnabled must be true or false")
    for i, attachment in enumerate(activity.get("attachments") or []):
        if isinstance(attachment, Mapping) and attachment.get("contentType") == CARD_TYPE:
            found += [f"attachments[{i}]: {p}" for p in card_problems(attachment.get("content"))]
    return found


def _ai_entity(entity: Mapping[str, Any], text: str) -> list[str]:
    found: list[str] = []
    if entity.get("@type") != "Message" or entity.get("@context") != "https://schema.org":
        found.append("the message entity needs @type Message and @context https://schema.org")
    if entity.get("additionalType") not in (None, ["AIGeneratedContent"]):
        found.append("additionalType must be ['AIGeneratedContent']")
    claims = entity.get("citation")
    if claims is None:
        return found
    if not isinstance(claims, list) or not claims:
        return [*found, "citation must be a non-empty list"]
    if len(claims) > MAX_CLAIMS:
        found.append(f"{len(claims)} citations (at most {MAX_CLAIMS})")
    positions: set[int] = set()
    for i, claim in enumerate(claims):
        where = f"citation[{i}]"
        if not isinstance(claim, Mapping) or claim.get("@type") != "Claim":
            found.append(f"{where}: @type must be Claim")
            continue
        position = claim.get("position")
        if isinstance(position, bool) or not isinstance(position, int) or position < 1:
            found.append(f"{where}: position must be a positive integer")
        elif position in positions:
            found.append(f"{where}: position {position} repeated")
        else:
            positions.add(position)
        found += [f"{where}.appearance: {p}" for p in _appearance(claim.get("appearance"))]
    cited = {int(n) for n in MARKER_RE.findall(text)}
    if cited - positions:
        found.append(f"text cites {sorted(cited - positions)} but there is no such citation")
    return found


def _appearance(appearance: Any) -> list[str]:
    if not isinstance(appearance, Mapping) or not appearance:
        return ["must be a non-empty object"]
    found: list[str] = []
    if appearance.get("@type") != "DigitalDocument":
        found.append("@type must be DigitalDocument")
    name = appearance.get("name")
    if not isinstance(name, str) or not name.strip() or units(name) > NAME_CHARS:
        found.append(f"name must be 1–{NAME_CHARS} characters (got {name!r})")
    abstract = appearance.get("abstract")
    if abstract is not None and (not isinstance(abstract, str) or units(abstract) > ABSTRACT_CHARS):
        found.append(f"abstract must be at most {ABSTRACT_CHARS} characters")
    keywords = appearance.get("keywords")
    if keywords is not None:
        if not isinstance(keywords, list) or len(keywords) > MAX_KEYWORDS:
            found.append(f"at most {MAX_KEYWORDS} keywords")
        else:
            for k in keywords:
                if not isinstance(k, str) or not k.strip() or units(k) > KEYWORD_CHARS:
                    found.append(f"keyword {k!r} must be 1–{KEYWORD_CHARS} characters")
    url = appearance.get("url")
    if url is not None and (not isinstance(url, str) or not url.startswith("https://")):
        found.append("url must be https://")  # deptbot's own rule: Teams opens only https links
    return found


def card_problems(card: Any) -> list[str]:
    """Adaptive Card basics: type, a version Teams renders, known elements with their required fields."""
    if not isinstance(card, Mapping) or card.get("type") != "AdaptiveCard":
        return ["content must be an AdaptiveCard"]
    found: list[str] = []
    version = str(card.get("version", ""))
    if not re.fullmatch(r"\d+\.\d+", version) or tuple(map(int, version.split("."))) > MAX_CARD_VERSION:
        found.append(f"version {version!r} (Teams renders 1.5 or earlier)")
    body = card.get("body")
    if not isinstance(body, list) or not body:
        found.append("body must be a non-empty list")
        body = []
    for i, element in enumerate(body):
        found += [f"body[{i}]: {p}" for p in _element(element)]
    actions = card.get("actions")
    if actions is not None:
        if not isinstance(actions, list):
            return [*found, "actions must be a list"]
        for i, action in enumerate(actions):
            found += [f"actions[{i}]: {p}" for p in _action(action)]
    return found


def _element(element: Any) -> list[str]:
    kind = element.get("type") if isinstance(element, Mapping) else None
    if kind not in CARD_ELEMENTS:
        return [f"element type {kind!r} is not one deptbot uses"]
    assert isinstance(element, Mapping)
    if kind == "Table":
        return _table(element)
    if kind == "TextBlock":
        text = element.get("text")
        return [] if isinstance(text, str) and text.strip() else ["TextBlock.text must be non-empty text"]
    facts = element.get("facts")
    if not isinstance(facts, list) or not facts:
        return ["FactSet.facts must be a non-empty list"]
    return [
        "every fact needs a string title and value"
        for f in facts
        if not isinstance(f, Mapping)
        or not isinstance(f.get("title"), str)
        or not isinstance(f.get("value"), str)
    ][:1]


def _table(table: Mapping[str, Any]) -> list[str]:
    """Adaptive Cards 1.5 ``Table`` (adaptivecards.io schema explorer, Table): ``columns`` of
    TableColumnDefinition, ``rows`` of ``TableRow`` whose ``cells`` are ``TableCell`` with
    ``items``; every row as wide as ``columns``; deptbot's cells hold TextBlocks only."""
    columns, rows = table.get("columns"), table.get("rows")
    if not isinstance(columns, list) or not columns or not isinstance(rows, list) or not rows:
        return ["Table needs non-empty columns and rows"]
    if not isinstance(table.get("firstRowAsHeader", True), bool):
        return ["Table.firstRowAsHeader must be true or false"]
    found: list[str] = []
    for i, row in enumerate(rows):
        cells = row.get("cells") if isinstance(row, Mapping) else None
        if not isinstance(row, Mapping) or row.get("type") != "TableRow" or not isinstance(cells, list):
            found.append(f"rows[{i}] must be a TableRow with cells")
            continue
        if len(cells) != len(columns):
            found.append(f"rows[{i}] has {len(cells)} cells for {len(columns)} columns")
        for cell in cells:
            items = cell.get("items") if isinstance(cell, Mapping) else None
            is_cell = isinstance(cell, Mapping) and cell.get("type") == "TableCell"
            if not is_cell or not isinstance(items, list):
                found.append(f"rows[{i}]: every cell must be a TableCell with items")
                break
            for item in items:
                found += [f"rows[{i}]: {p}" for p in _element(item) if item.get("type") != "Table"]
    return found


def _action(action: Any) -> list[str]:
    kind = action.get("type") if isinstance(action, Mapping) else None
    if kind not in CARD_ACTIONS:
        return [f"action type {kind!r} is not one deptbot uses"]
    assert isinstance(action, Mapping)
    found = [] if isinstance(action.get("title"), str) and action["title"] else ["title must be text"]
    if kind == "Action.Submit" and not isinstance(action.get("data"), Mapping):
        found.append("Action.Submit.data must be an object")
    if kind == "Action.OpenUrl" and not str(action.get("url", "")).startswith("https://"):
        found.append("Action.OpenUrl.url must be https://")
    return found
