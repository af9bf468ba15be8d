"""Chat self-service under review findings (session 20):

- ``/kb my-data`` and ``forget-me`` run on the few report threads the admin console uses,
  so one person repeating them could hold every thread: one export or erase in flight per
  person, a second one is told it is already running (others are not held up);
- an erase failing in chat passed its StoreError text (server paths) to the person; now
  they hear it did not finish, and the admins get the cause in a notice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.errors import StoreError, UsageError
from bot.governance.privacy import Privacy, SelfService
from bot.governance.vault import forget_open_vaults
from bot.settings import Settings
from bot.store.notices import SqliteNotices
from tests.governance.test_privacy_erase import EMAIL, _canary_activity, _world


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


class _Held:
    """A stand-in ``Privacy`` whose export and erase wait until released."""

    def __init__(self, release: threading.Event, started: threading.Event) -> None:
        self.release, self.started = release, started

    def export(self, email: str, **_: Any) -> str:
        self.started.set()
        assert self.release.wait(10)
        return f"export of {email}"

    def erase(self, email: str, **_: Any) -> str:
        self.started.set()
        assert self.release.wait(10)
        return f"erase of {email}"

    def close(self) -> None:
        pass


def test_one_request_in_flight_per_person() -> None:
    release, started = threading.Event(), threading.Event()
    service = SelfService(lambda: _Held(release, started))  # type: ignore[arg-type, return-value]
    results: list[object] = []
    first = threading.Thread(target=lambda: results.append(service.export(EMAIL, platform="slack")))
    first.start()
    assert started.wait(10)
    code = service.start_erase(EMAIL)
    with pytest.raises(UsageError, match="already running"):
        service.export(EMAIL.upper(), platform="slack")  # before: a second thread held
    with pytest.raises(UsageError, match="already running"):
        service.confirm_erase(EMAIL, code, platform="slack")
    other = threading.Thread(
        target=lambda: results.append(service.export("bob@example.com", platform="slack"))
    )
    other.start()  # someone else is not held up
    release.set()
    first.join(10)
    other.join(10)
    assert sorted(map(str, results)) == ["export of bob@example.com", f"export of {EMAIL.lower()}"]
    assert (
        service.confirm_erase(EMAIL, code, platform="slack") == f"erase of {EMAIL.lower()}"
    )  # the code kept


def test_a_failed_chat_erase_shows_no_server_text_and_tells_the_admins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, assistant, convo, notices = _world(tmp_path, {})
    _canary_activity(assistant, convo, notices, settings.state_dir)[0].close()
    convo.close()
    forget_open_vaults()
    secret = f"Cannot open the audit database at {tmp_path}/state/audit.db for {EMAIL}."

    def broken(self: Privacy, person: str) -> int:
        raise StoreError(secret)

    monkeypatch.setattr(Privacy, "_pseudonymize_audit", broken)
    privacy = Privacy.for_settings(
        Settings.load(departments=tmp_path / "departments", state=settings.state_dir)
    )
    try:
        with pytest.raises(StoreError) as chat:
            privacy.erase(EMAIL, platform="teams")
        with pytest.raises(StoreError, match="Cannot open the audit database at"):
            privacy.erase(EMAIL)  # the operator's CLI hears the cause
    finally:
        privacy.close()
    said = chat.value.user_message
    assert str(tmp_path) not in said and "did not finish" in said, said  # before: the path
    assert "admins have been told" in said
    store = SqliteNotices.in_state_dir(settings.state_dir)
    try:
        texts = [n.text for n in store.recent()]
    finally:
        store.close()
    (notice,) = [t for t in texts if "did not finish" in t]
    assert str(tmp_path) in notice and EMAIL.lower() not in notice.lower(), notice
