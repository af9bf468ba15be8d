"""An erase killed midway (SIGKILL, a power cut) completes when it is run again.

The worst place to die is right after the person's audit rows are pseudonymized and
before their data key is destroyed (the key goes last on purpose: ``Privacy._erase``).
Nothing there is left under the e-mail in the audit log, so a rerun must not treat the
person as "already erased": it finds their rows under the pseudonym too, destroys the key,
finishes the stores the first run never reached (usage, notices, console, the SQLite
copies ``db copy`` left) and writes the receipt. A crash is simulated by raising a
``BaseException`` (what no ``except Exception`` in the erase would catch, like a kill)
from the step right after the pseudonymization.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.governance.privacy import Privacy
from bot.governance.vault import forget_open_vaults, vault_for
from bot.settings import Settings
from bot.wiring import open_audit_log
from tests.governance.test_privacy_erase import (
    EMAIL,
    FEEDBACK_WORDS,
    QUESTION_WORDS,
    _canary_activity,
    _files,
    _holding,
    _world,
)
from tests.store.test_copy_erase_gaps import _copied


class Killed(BaseException):
    """The process dying: no ``except Exception`` sees it."""


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def _killed_after_pseudonymizing(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run an erase that dies at the step after ``_pseudonymize_audit`` (the usage rows)."""
    calls: list[str] = []

    def dies(self: Privacy, person: str, alias: str) -> int:
        calls.append(person)
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(Privacy, "_pseudonymize_usage", dies)
        privacy = Privacy.for_settings(settings)
        with pytest.raises(Killed):
            privacy.erase(EMAIL)
        privacy.close()
    assert calls == [EMAIL.lower()]  # it died where meant: after the audit rows were pseudonymized


def _has_key(settings: Settings) -> bool:
    return vault_for(settings).has_key(EMAIL.lower())


def test_a_rerun_after_a_kill_finishes_the_erase_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, assistant, convo, notices = _world(tmp_path, {})
    state = settings.state_dir
    console, _ = _canary_activity(assistant, convo, notices, state)
    console.close()
    convo.close()

    _killed_after_pseudonymizing(settings, monkeypatch)
    audit = open_audit_log(settings)
    assert not [r for r in audit.tail(50) if str(r["user"]).lower() == EMAIL.lower()]  # looks erased
    assert _has_key(settings)  # but the key is still there, and usage, notices, console name them
    assert "usage.db" in {n.removesuffix("-wal") for n in _holding(_files(state), EMAIL)}

    privacy = Privacy.for_settings(settings)
    receipt = privacy.erase(EMAIL)
    privacy.close()
    assert receipt.complete and receipt.key_shredded  # the key the first run left is destroyed
    assert not _has_key(settings)
    assert receipt.removed["usage_rows_pseudonymized"] >= 1 and receipt.removed["notices"] == 1
    assert receipt.removed["admin_sessions"] == 1 and receipt.removed["admin_events_pseudonymized"] == 3
    assert receipt.request_id
    rows = audit.tail(50)
    assert rows[-1]["rule"] == "privacy:erase" and rows[-1]["user"] == receipt.pseudonym
    assert audit.verify().ok
    after = _files(state)
    for needle in (EMAIL, *QUESTION_WORDS, FEEDBACK_WORDS):
        assert _holding(after, needle) == [], needle


def test_a_rerun_after_a_kill_finishes_the_erase_and_its_copies_on_postgresql(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, moved = _copied(run, pg_url)
    assert _holding(_files(moved), EMAIL)
    _killed_after_pseudonymizing(settings, monkeypatch)
    assert _has_key(settings) and _holding(_files(moved), EMAIL)  # the copy was never reached

    forget_open_vaults()
    privacy = Privacy.for_settings(settings)
    receipt = privacy.erase(EMAIL)
    privacy.close()
    assert receipt.complete and receipt.reached_everything and receipt.key_shredded
    assert not _has_key(settings)
    assert receipt.removed["copied_sqlite_folders_erased"] == 1
    assert receipt.removed["usage_rows_pseudonymized"] >= 1 and receipt.request_id
    assert _holding(_files(moved), EMAIL) == []
    for word in QUESTION_WORDS:
        assert _holding(_files(moved), word) == [], word
