"""Channel safety from the channel's actual members (issue 8, class 2), in the core.

An answer may be shown to a conversation only when its readers are known and every one
may ask the department and read every source the model saw; a declared channel audience
only narrows. Everything unknown goes to the asker privately, with the reason.
"""

from __future__ import annotations

import pytest

from bot.core.access import CHANNEL_REASONS
from bot.core.cachekey import normalize_question
from bot.core.pipeline import Assistant
from bot.core.types import Answer, ChannelReaders, Message, Status
from tests.fakes import CANARIES

ENGINEERS = frozenset({"bob@example.com"})
MIXED = frozenset({"bob@example.com", "grace@example.com"})  # grace may not ask Engineering
FINANCE = frozenset({"carol@example.com", "dave@example.com"})


def channel_ask(
    assistant: Assistant,
    user: str,
    text: str,
    *,
    department: str | None = None,
    channel: str = "C0ENGCHAT",
    readers: ChannelReaders | None = None,
) -> Answer:
    return assistant.ask(
        Message(
            user_id=user,
            email=user,
            text=text,
            department=department,
            platform="slack",
            channel=channel,
            in_channel=True,
            channel_readers=readers,
        )
    )


def test_unmapped_channel_with_unknown_members_is_private(assistant: Assistant) -> None:
    """Old code guessed the readers from the department's ask list and posted publicly."""
    a = channel_ask(assistant, "bob@example.com", "production deploys and rollbacks", department="eng")
    assert a.status is Status.ANSWERED
    assert not a.channel_safe
    assert a.private_reason == "members-unknown"


def test_a_member_who_may_not_ask_the_department_keeps_the_answer_private(assistant: Assistant) -> None:
    readers = ChannelReaders(MIXED)
    a = channel_ask(assistant, "bob@example.com", "production deploys", department="eng", readers=readers)
    assert a.status is Status.ANSWERED and CANARIES["eng"] in a.text + "".join(c.snippet for c in a.citations)
    assert not a.channel_safe and a.private_reason == "member-not-allowed"
    only_engineers = channel_ask(
        assistant,
        "bob@example.com",
        "production deploys",
        department="eng",
        readers=ChannelReaders(ENGINEERS),
    )
    assert only_engineers.channel_safe and only_engineers.private_reason == ""


def test_declared_company_wide_audience_only_narrows(assistant: Assistant) -> None:
    """C0FIN is mapped to Finance; a declaration wider than Engineering's ask list blocks
    Engineering answers there even when every current member is an engineer."""
    company = assistant.company
    fin = company.departments["finance"]
    declared = fin.model_copy(
        update={"channels": fin.channels.model_copy(update={"audience": {"C0FIN": ["*@example.com"]}})}
    )
    assistant.reconfigure(
        type(company)(
            departments={**company.departments, "finance": declared}, groups=company.groups, root=company.root
        )
    )
    a = channel_ask(
        assistant,
        "bob@example.com",
        "production deploys",
        department="eng",
        channel="C0FIN",
        readers=ChannelReaders(ENGINEERS),
    )
    assert not a.channel_safe and a.private_reason == "declared-audience"
    fine = channel_ask(
        assistant,
        "dave@example.com",
        "meal expenses",
        department="finance",
        channel="C0FIN",
        readers=ChannelReaders(FINANCE),
    )
    assert fine.channel_safe


def test_public_channel_needs_a_declared_audience(assistant: Assistant) -> None:
    public = ChannelReaders(FINANCE, public=True)
    a = channel_ask(assistant, "dave@example.com", "meal expenses", department="finance", readers=public)
    assert not a.channel_safe and a.private_reason == "public-undeclared"


@pytest.mark.parametrize("why", ["external", "too-large", "unavailable", "unresolved"])
def test_unverifiable_members_keep_answers_private(assistant: Assistant, why: str) -> None:
    a = channel_ask(
        assistant,
        "dave@example.com",
        "meal expenses",
        department="finance",
        readers=ChannelReaders.unavailable(why),
    )
    assert not a.channel_safe and a.private_reason == why
    assert CHANNEL_REASONS[why]


def test_member_without_a_valid_address_is_unresolved(assistant: Assistant) -> None:
    readers = ChannelReaders(frozenset({"dave@example.com", "not-an-address"}))
    a = channel_ask(assistant, "dave@example.com", "meal expenses", department="finance", readers=readers)
    assert not a.channel_safe and a.private_reason == "unresolved"


def test_restricted_sources_and_dont_know_titles_count(assistant: Assistant) -> None:
    readers = ChannelReaders(FINANCE)
    a = channel_ask(
        assistant, "carol@example.com", "payroll salary band L3", department="finance", readers=readers
    )
    assert not a.channel_safe and a.private_reason == "restricted-sources"
    assert any(("group:finance-admins",) in sig for sig in a.audiences)


def test_share_is_rechecked_against_current_members(assistant: Assistant) -> None:
    """An answer from a DM (or an earlier check) is judged again for the channel it goes to."""
    dm = assistant.ask(
        Message(user_id="bob", email="bob@example.com", text="production deploys", department="eng")
    )
    assert dm.channel_safe  # a DM is always safe for its only reader
    ok = assistant.channel_verdict(dm, channel="C0ENG", readers=ChannelReaders(ENGINEERS))
    assert ok.allowed
    joined = assistant.channel_verdict(dm, channel="C0ENG", readers=ChannelReaders(MIXED))
    assert not joined.allowed and joined.rule == "channel:member-not-allowed"
    assert not assistant.channel_verdict(dm, channel="C0ENG", readers=None).allowed
    denied = assistant.ask(Message(user_id="g", email="grace@example.com", text="deploys", department="eng"))
    assert not assistant.channel_verdict(denied, channel="C0ENG", readers=ChannelReaders(ENGINEERS)).allowed


def test_reconfigure_removes_a_group_member_for_the_next_request(assistant: Assistant) -> None:
    q = "payroll salary band L3"
    before = assistant.ask(Message(user_id="c", email="carol@example.com", text=q, department="finance"))
    assert any("payroll" in c.path for c in before.citations)
    company = assistant.company
    groups = {**company.groups, "finance-admins": frozenset()}
    assistant.reconfigure(type(company)(departments=company.departments, groups=groups, root=company.root))
    after = assistant.ask(Message(user_id="c", email="carol@example.com", text=q, department="finance"))
    assert not any("payroll" in c.path for c in after.citations)
    assert CANARIES["payroll"] not in after.text + "".join(c.snippet for c in after.citations)


def test_cache_key_keeps_comparison_signs() -> None:
    assert normalize_question("Meal > 50 EUR?") != normalize_question("meal < 50 EUR")
    assert normalize_question("What is 1.5 days?") != normalize_question("what is 15 days")
    assert normalize_question("How many vacation days, do I get?!") == normalize_question(
        "how many  vacation days do I get"
    )


def test_workspace_stand_in_lets_public_channels_answer_what_everyone_may_read(assistant: Assistant) -> None:
    workspace = ChannelReaders(FINANCE, public=True, stand_in=("*@example.com",))
    fine = channel_ask(
        assistant, "dave@example.com", "meal expenses", department="finance", readers=workspace
    )
    assert fine.channel_safe
    engineers = ChannelReaders(ENGINEERS, public=True, stand_in=("*@example.com",))
    eng = channel_ask(assistant, "bob@example.com", "production deploys", department="eng", readers=engineers)
    assert not eng.channel_safe and eng.private_reason == "declared-audience"


def test_share_is_refused_once_the_sources_were_re_indexed(assistant: Assistant, retriever) -> None:  # type: ignore[no-untyped-def]
    """The click-time re-check used the audiences recorded at ask time; after a refresh
    (which may have narrowed an audience) those are out of date, so the share is refused."""
    dm = assistant.ask(
        Message(user_id="bob", email="bob@example.com", text="production deploys", department="eng")
    )
    assert assistant.channel_verdict(dm, channel="C0ENG", readers=ChannelReaders(ENGINEERS)).allowed
    retriever.version = "v2"
    stale = assistant.channel_verdict(dm, channel="C0ENG", readers=ChannelReaders(ENGINEERS))
    assert not stale.allowed and stale.rule == "channel:stale"
