"""The pure parts: translation, Block Kit rendering, settings, manifest, de-duplication."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from bot.adapters.http import build_app
from bot.adapters.slack import blocks as bk
from bot.adapters.slack import translate
from bot.adapters.slack.app import SlackConfig
from bot.adapters.slack.manifest import render_manifest
from bot.core.pipeline import Assistant
from bot.core.types import Answer, Citation, Classification, Status
from bot.errors import ConfigError, UsageError
from bot.settings import Settings
from bot.store.dedup import DedupStore


def answer(text: str, **kw: object) -> Answer:
    cite = Citation(
        n=1,
        title="Policy <!here> & co",
        path="knowledge/hr/p.md",
        department="hr",
        score=0.9,
        snippet="",
        anchor="page 2",
        modified=datetime(2026, 1, 5, tzinfo=UTC),
    )
    defaults: dict[str, object] = {
        "citations": (cite,),
        "department": "hr",
        "department_title": "Human Resources",
    }
    return Answer(text=text, request_id="abc123", **{**defaults, **kw})  # type: ignore[arg-type]


def test_plain_text_turns_slack_markup_into_words() -> None:
    raw = "<@UBOT> ask <@U1|ann> in <#C1|hr> about <https://x.example|the wiki> &amp; "
    raw += "<mailto:a@b.c|a@b.c> <!here>"
    assert translate.plain_text(raw, bot_user_id="UBOT") == (
        "ask @ann in #hr about the wiki (https://x.example) & a@b.c @here"
    )


def test_incoming_ignores_bots_edits_and_itself() -> None:
    base = {"type": "message", "channel": "C1", "user": "U1", "ts": "1.0", "text": "hi"}
    assert translate.incoming(base, bot_user_id="UBOT") is not None
    for extra in (
        {"subtype": "message_changed"},
        {"subtype": "message_deleted"},
        {"bot_id": "B1"},
        {"user": "UBOT"},
    ):
        assert translate.incoming({**base, **extra}, bot_user_id="UBOT") is None
    inc = translate.incoming({**base, "thread_ts": "0.5"}, bot_user_id="UBOT")
    assert inc is not None and inc.thread == "0.5" and inc.in_thread and inc.in_channel


def test_history_is_bounded_and_labels_the_bot() -> None:
    msgs = [{"ts": f"{i}.0", "user": "U1", "text": f"q{i}"} for i in range(30)]
    msgs.append({"ts": "5.5", "user": "UBOT", "bot_id": "B", "text": "answer"})
    msgs.append({"ts": "5.6", "bot_id": "BOTHER", "user": "UOTHER", "text": "noise"})
    turns = translate.history(msgs, bot_user_id="UBOT", before_ts="29.0", limit=10)
    assert len(turns) == 10 and turns[-1].text == "q28"
    turns = translate.history(msgs, bot_user_id="UBOT", before_ts="6.0", limit=3)
    assert [t.role for t in turns] == ["user", "user", "assistant"]


def test_history_reads_our_labels_and_fails_closed_without_one() -> None:
    def ours(ts: str, **extra: object) -> dict[str, object]:
        return {"ts": ts, "user": "UBOT", "bot_id": "B", "text": f"answer {ts}", **extra}

    msgs = [
        {"ts": "1.0", "user": "U1", "text": "q"},
        ours("2.0", metadata=translate.answer_metadata(Classification.CONFIDENTIAL, "r1")),
        ours("3.0", metadata=translate.answer_metadata(Classification.PUBLIC)),  # PUBLIC is 0, not "missing"
        ours("4.0"),
        ours("5.0", metadata={"event_type": "deptbot_answer", "event_payload": {"label": "secret"}}),
        ours("6.0", metadata={"event_type": "other_app", "event_payload": {"label": "public"}}),
    ]
    turns = translate.history(msgs, bot_user_id="UBOT", before_ts="9.0", unlabelled=Classification.INTERNAL)
    C = Classification
    assert [t.label for t in turns] == [None, C.CONFIDENTIAL, C.PUBLIC, C.INTERNAL, C.INTERNAL, C.INTERNAL]
    # Without a readable label: restricted, in a department's channel as anywhere else (the
    # channel's department label says nothing about what that one answer cited).
    assert translate.history(msgs[3:4], bot_user_id="UBOT", before_ts="9.0")[0].label is C.RESTRICTED
    assert not hasattr(translate, "unlabelled_label")


def test_parse_command() -> None:
    depts = ["hr", "finance"]
    assert translate.parse_command("/ask", "", depts).action == "help"
    assert translate.parse_command("/ask", "hr vacation days?", depts) == translate.Command(
        "ask", department="hr", text="vacation days?"
    )
    assert translate.parse_command("/ask", "hr", depts) == translate.Command("ask", text="hr")
    assert translate.parse_command("/task", "hr offer-letter Jane Doe", depts) == translate.Command(
        "task", department="hr", template="offer-letter", text="Jane Doe"
    )
    assert translate.parse_command("/kb", "refresh HR", depts) == translate.Command(
        "refresh", department="hr"
    )
    assert translate.parse_command("/kb", "", depts) == translate.Command("status")


def test_every_string_from_documents_and_models_is_escaped() -> None:
    out = json.dumps(
        bk.answer_blocks(answer("Hi <!channel> <@U1> <https://evil|x> & **bold** [a](https://b) [1]")),
        ensure_ascii=False,
    )
    for live in ("<!channel>", "<@U1>", "<https://evil", "<!here>"):
        assert live not in out
    assert "&lt;!channel&gt;" in out and "&amp;" in out and "*bold*" in out and "a (https://b)" in out
    assert "Policy &lt;!here&gt; &amp; co, p. 2 · Human Resources · updated Jan 5, 2026" in out


def test_long_answers_are_split_within_slack_limits() -> None:
    text = "\n\n".join(f"Paragraph {i} " + "word & more " * 300 for i in range(80))
    blocks = bk.answer_blocks(answer(text))
    assert len(blocks) <= bk.MAX_BLOCKS
    assert all(len(b["text"]["text"]) <= bk.MAX_SECTION for b in blocks if b["type"] == "section")
    assert all("&am" not in b["text"]["text"][-4:] for b in blocks if b["type"] == "section")
    assert blocks[-1]["type"] == "actions"


def test_denials_have_no_feedback_buttons() -> None:
    blocks = bk.answer_blocks(answer("You can't ask Finance.", status=Status.DENIED, citations=()))
    assert [b["type"] for b in blocks] == ["section", "context"] and ":no_entry:" in json.dumps(blocks)


def test_slack_settings_name_the_missing_variable() -> None:
    assert SlackConfig.from_env({}) is None
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        SlackConfig.from_env({"SLACK_BOT_TOKEN": "xoxb-1"})
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        SlackConfig.from_env({"SLACK_SIGNING_SECRET": "s"})
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        SlackConfig.from_env({"SLACK_BOT_TOKEN": "xoxp-user", "SLACK_SIGNING_SECRET": "s"})
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        SlackConfig.from_env({"SLACK_BOT_TOKEN": "xoxb-1"}, socket_mode=True)
    cfg = SlackConfig.from_env(
        {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": "http://h/x"}
    )
    assert cfg is not None and cfg.api_url == "http://h/x/"


def test_build_app_without_slack_serves_health_only(assistant: Assistant, tmp_path: Path) -> None:
    mounted: list[str] = []
    app = build_app(
        assistant=assistant,
        settings=Settings(departments_dir=tmp_path, state_dir=tmp_path, env={}),
        mounts=[lambda a: mounted.append("teams")],
    )
    paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert "/healthz" in paths and "/slack/events" not in paths and mounted == ["teams"]
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        build_app(
            assistant=assistant, settings=Settings(tmp_path, tmp_path, env={"SLACK_BOT_TOKEN": "xoxb-1"})
        )


def test_manifest_renders_with_the_url() -> None:
    data = yaml.safe_load(render_manifest("https://bot.example.com/"))
    assert data["settings"]["event_subscriptions"]["request_url"] == "https://bot.example.com/slack/events"
    assert {c["command"] for c in data["features"]["slash_commands"]} == {"/ask", "/task", "/kb"}
    assert "users:read.email" in data["oauth_config"]["scopes"]["bot"]
    socket = yaml.safe_load(render_manifest(socket_mode=True))
    assert socket["settings"]["socket_mode_enabled"] is True and "YOUR-HOST" not in render_manifest(
        socket_mode=True
    )
    with pytest.raises(UsageError):
        render_manifest("http://insecure.example")


def test_dedup_persists_and_expires(tmp_path: Path) -> None:
    now = [1000.0]
    store = DedupStore.in_state_dir(tmp_path, ttl=60.0)
    store._clock = lambda: now[0]
    assert store.claim("e1") and not store.claim("e1")
    store.mark_thread("C1", "1.0")
    store.close()
    again = DedupStore(path=tmp_path / DedupStore.FILE, ttl=60.0, clock=lambda: now[0])
    assert not again.claim("e1") and again.has_thread("C1", "1.0")
    now[0] += 61
    assert again.claim("e1")
    again.close()


def test_sources_link_to_docs_url_when_configured() -> None:
    from dataclasses import replace

    base = answer("Fact [1].")
    linked = replace(
        base, citations=(replace(base.citations[0], url="https://intranet.example.com/hr/p.md"),)
    )
    line = bk.source_line(linked.citations[0], linked)
    assert line.startswith("[1] <https://intranet.example.com/hr/p.md|Policy &lt;!here&gt; &amp; co, p. 2>")
    assert "<https://" not in bk.source_line(base.citations[0], base)  # no URL, no link
