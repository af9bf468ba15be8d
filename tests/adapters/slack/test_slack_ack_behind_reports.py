"""Console reports must not delay Slack acknowledgements.

The Slack adapter settles an event's claim (on the runtime's quick threads) before it
acknowledges the event. When the console's reports ran on those threads too, four admins
opening cold reports held all four, Slack got its 200 only after the reports, past its
3 s, and redelivered. Here the console's report threads are held on an Event
(``tests.adapters.held_reports``): the event must still be claimed, acknowledged and
answered, and ``/readyz`` answer, before the reports are let go."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.adapters.http import SLACK
from tests.adapters.held_reports import SAFETY, HeldReports, hold_reports, until
from tests.adapters.slack.conftest import SlackHarness, mention


class ClaimSpy:
    """The adapter's chat state; notes, for each claim, whether the reports were still held."""

    def __init__(self, real: Any, reports: HeldReports) -> None:
        self.real = real
        self.claims_while_held: list[bool] = []
        self._reports = reports

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.real.claim(*args, **kwargs)
        finally:
            self.claims_while_held.append(not self._reports.release.is_set())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_slack_event_is_claimed_acked_and_answered_while_console_reports_hold_their_threads(
    harness: SlackHarness,
) -> None:
    h = harness
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with h:
            assert h._runner is not None and h.session is not None
            session = h.session
            held, cookies, busy = hold_reports(h._runner.app)
            adapter = h._runner.app[SLACK]
            spy = ClaimSpy(adapter._state, held)
            adapter._state = spy
            adapter.conversations._state = spy

            async def report() -> int:
                async with session.get(h.url + "/admin/d/hr", cookies=cookies) as resp:
                    await resp.read()
                    return resp.status

            reports = [asyncio.create_task(report()) for _ in range(busy + 1)]  # one more waits its turn
            try:
                await until(lambda: held.entered >= busy)
                try:
                    status, _ = await asyncio.wait_for(
                        h.event(mention("How many vacation days do I get?"), event_id="EvBEHIND"), SAFETY
                    )
                    seen["ack"] = status
                    seen["claims"] = list(spy.claims_while_held)
                    async with session.get(h.url + "/readyz") as resp:
                        seen["readyz"] = resp.status
                    await h.stub.wait_for("reactions.remove", timeout=SAFETY)
                    seen["answered_while_held"] = not held.release.is_set()
                except TimeoutError:
                    seen["stuck"] = True
            finally:
                held.release.set()
                seen["reports"] = await asyncio.gather(*reports)
            seen["entered"] = held.entered

    asyncio.run(scenario())
    assert "stuck" not in seen, "the Slack acknowledgement waited behind the console reports"
    assert seen["ack"] == 200
    assert seen["claims"] == [True]  # claimed before the reports were let go
    assert seen["readyz"] in (200, 503)  # it answered at all (readiness itself is not the point)
    assert seen["answered_while_held"]
    assert seen["reports"] == [200] * len(seen["reports"])  # the held reports then finished
    assert seen["entered"] == len(seen["reports"])
    assert len(h.stub.to("chat.postMessage")) == 1
