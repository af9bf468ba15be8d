"""The canary matrix, extended to the fail-closed paths (issue 8): channel membership,
share-to-channel, symlinks out of a folder, metadata typos and configuration reload.

Everything runs through the real parts: index, hybrid retrieval, the offline router, the
audit log, answer cache and admin notices, on both backends (``db_backend``: SQLite files,
or PostgreSQL tables). Each hostile file below carries its own canary; a user who may not
read it must never get it — not in an answer, a citation, the generator's request, a
stored row (a notice about a file that is not indexed included) or a log — and an answer
that holds a canary is never judged safe for a channel where someone who may not read
that canary is a member.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from bot.config import Company
from bot.core.pipeline import Assistant
from bot.core.types import Answer, ChannelReaders, Message
from tests.canary_world import open_stores
from tests.fakes import CANARIES, RecordingGenerator, make_company
from tests.pg_fixtures import DbBackend

try:  # moved out of the core when real detectors were adopted
    from bot.sensitivity import PatternClassifier
except ImportError:  # pragma: no cover
    from bot.core.sensitivity import PatternClassifier  # type: ignore[no-redef]

HOSTILE = {
    # a link inside hr/ to the restricted payroll folder: must not be followed
    "symlink": "CANARY-LINK-60d1",
    # front matter meant as a restriction, miscased: the file must not be indexed at all
    "typo-key": "CANARY-TYPO-2b7e",
    # blank line before the front matter: not indexed either
    "typo-layout": "CANARY-LAYOUT-8c33",
    # a look-alike access file name over a folder: the folder must not be indexed
    "lookalike": "CANARY-LOOKALIKE-f019",
}
USERS = ["alice@example.com", "hank@example.com", "carol@example.com", "dave@example.com", "bob@example.com"]
VISIBLE = {
    "hr": set(USERS) | {"grace@example.com"},
    "hr-private": {"hank@example.com"},
    "finance": set(USERS) | {"grace@example.com"},
    "payroll": {"carol@example.com"},
    "eng": {"bob@example.com"},
    "symlink": {"carol@example.com"},  # through finance/payroll itself, never through hr/
    "typo-key": set(),
    "typo-layout": set(),
    "lookalike": set(),
}
ALL = {**CANARIES, **HOSTILE}
QUESTIONS = [
    ("How many vacation days carry over?", "hr"),
    ("workplace investigations case code", "hr"),
    ("bonus payout schedule leadership code", "hr"),
    ("parking garage allocation reference", "hr"),
    ("payroll salary band L3 code", "finance"),
    ("Meal expenses per day and receipts", "finance"),
    ("production deploys and rollbacks reference", "eng"),
]


def _hostile_files(root: Path) -> None:
    hr = root / "knowledge" / "hr"
    payroll = root / "knowledge" / "finance" / "payroll"
    (payroll / "bonus.md").write_text(
        f"# Bonus payout\nBonus payout schedule for leadership, code {HOSTILE['symlink']}.\n"
    )
    os.symlink(payroll / "bonus.md", hr / "bonus-link.md")
    (hr / "parking.md").write_text(
        '---\nAudience: ["group:hr-admins"]\n---\n# Parking\n'
        f"Parking garage allocation reference {HOSTILE['typo-key']}.\n"
    )
    (hr / "parking-layout.md").write_text(
        '\n---\naudience: ["group:hr-admins"]\n---\n# Parking levels\n'
        f"Parking garage allocation reference level two {HOSTILE['typo-layout']}.\n"
    )
    secret = hr / "board"
    secret.mkdir()
    (secret / "_access.yml").write_text('audience: ["group:hr-admins"]\n')
    (secret / "parking-board.md").write_text(
        f"# Board parking\nParking garage allocation reference for the board {HOSTILE['lookalike']}.\n"
    )


@pytest.fixture
def world(
    tmp_path_factory: pytest.TempPathFactory, db_backend: DbBackend
) -> tuple[Assistant, RecordingGenerator, Path, Company]:
    root = tmp_path_factory.mktemp("company")
    company = make_company(root)
    _hostile_files(root)
    stores = open_stores(root, db_backend.env, company)  # indexes: the hostile files are told as notices
    assistant = Assistant(
        company=company,
        retriever=stores.knowledge,
        indexer=stores.knowledge,
        generator=stores.generator,  # type: ignore[arg-type]
        audit=stores.audit,
        classifier=PatternClassifier(),
        cache=stores.cache,
        notices=stores.notices,
    )
    return assistant, stores.generator, stores.settings.state_dir, company


def _text(answer: Answer) -> str:
    return repr(asdict(answer))


def _hidden_from(user: str) -> list[str]:
    return [canary for name, canary in ALL.items() if user not in VISIBLE[name]]


@pytest.mark.parametrize("user", USERS)
def test_hostile_files_and_channels_never_leak(  # type: ignore[no-untyped-def]
    world, db_backend: DbBackend, user: str, caplog: pytest.LogCaptureFixture
) -> None:
    assistant, gen, state, _ = world
    gen.requests.clear()
    caplog.set_level(logging.DEBUG)
    mixed = ChannelReaders(frozenset({user, "grace@example.com"}))
    answers: list[Answer] = []
    for question, dept in QUESTIONS:
        for readers in (None, mixed, ChannelReaders(frozenset({user}))):
            answers.append(
                assistant.ask(
                    Message(
                        user_id=user,
                        email=user,
                        text=question,
                        department=dept,
                        platform="slack",
                        channel="C0MIXED",
                        in_channel=readers is not None,
                        channel_readers=readers,
                    )
                )
            )
    seen = "\n".join(_text(a) for a in answers)
    generated = "\n".join(repr(r) for r in gen.requests)
    stored = db_backend.dump(state)
    for canary in _hidden_from(user):
        assert canary not in seen, f"{canary} in an answer for {user}"
        assert canary not in generated, f"{canary} sent to the generator for {user}"
        assert canary not in stored, f"{canary} stored ({db_backend.name}) for {user}"
        assert canary not in caplog.text, f"{canary} logged for {user}"
    # channel membership: grace is in the channel, so whatever is judged safe there (now,
    # or when shared later) holds nothing grace may not read
    grace_hidden = _hidden_from("grace@example.com")
    shared = 0
    for answer in answers:
        shown = _text(answer)
        share = assistant.channel_verdict(answer, channel="C0MIXED", readers=mixed)
        if share.allowed:
            shared += 1
            assert not any(c in shown for c in grace_hidden), f"share of {answer.request_id} leaks to grace"
    posted = [a for a in answers[1::3] if a.channel_safe]  # the asks made in the mixed channel
    for answer in posted:
        assert not any(c in _text(answer) for c in grace_hidden)
    # not vacuous: some answers (HR's vacation rules, which grace may read) do reach the channel
    assert shared and posted
    # not vacuous: what the user may see comes back through the same path
    assert any(c in seen for name, c in ALL.items() if user in VISIBLE[name])


def test_reload_removes_a_revoked_reader_from_the_next_answer(world) -> None:  # type: ignore[no-untyped-def]
    assistant, _, _, company = world
    q = "payroll salary band L3 code"
    before = assistant.ask(Message(user_id="c", email="carol@example.com", text=q, department="finance"))
    assert CANARIES["payroll"] in _text(before)
    groups = {**company.groups, "finance-admins": frozenset()}
    assistant.reconfigure(Company(departments=company.departments, groups=groups, root=company.root))
    after = assistant.ask(Message(user_id="c", email="carol@example.com", text=q, department="finance"))
    assert CANARIES["payroll"] not in _text(after)  # not from the cache either
