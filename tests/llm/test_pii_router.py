"""``pii: route_private | redact | block`` at the router, against recording loopback stubs.

The stubs keep every request body the real SDKs sent; the canaries below must never be in
one for ``redact`` (question and history), must be restored in what the asker sees (also
when a placeholder arrives split over streamed deltas), and ``block`` must send nothing.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from bot.core.types import Classification, Generation, GenerationRequest, Turn
from bot.llm.router import Router
from bot.store.usage import UsageStore
from tests.llm.conftest import SICK, VACATION, RouterFactory, chunk, env_for, make_request
from tests.llm.stubs import StubLLM

EMAIL = "canary.pii.7f3a@example.org"
PHONE = "+44 20 7946 0958"
IBAN = "DE89 3704 0044 0532 0130 00"
SSN = "536-90-2218"
# Every way each canary could show up in a body: as written, compact, digits only.
FORBIDDEN = (
    EMAIL,
    "canary.pii.7f3a",
    PHONE,
    "7946 0958",
    "2079460958",
    IBAN,
    "DE89370400440532013000",
    "0532 0130",
    SSN,
    "536902218",
)
QUESTION = f"Please send my payslip to {EMAIL}, pay it into {IBAN}, call me on {PHONE}. My SSN is {SSN}."
PII_REASONS = ("email-address", "iban", "phone-number", "national-id")
MODEL_ANSWER = "I will write to [EMAIL_1], pay into [IBAN_1] and call [PHONE_1] about [ID_1] [1]."
RESTORED = f"I will write to {EMAIL}, pay into {IBAN} and call {PHONE} about {SSN} [1]."


def pii_request(question: str = QUESTION, **kw: Any) -> GenerationRequest:
    kw.setdefault("classification", Classification.RESTRICTED)
    kw.setdefault("label_reasons", PII_REASONS)
    kw.setdefault("department_label", Classification.INTERNAL)
    kw.setdefault("pii", "redact")
    return make_request(question, **kw)


def bodies(stub: StubLLM) -> str:
    """Everything the stub received, decoded (so an escape cannot hide a canary) and raw-ish."""
    return "\n".join(
        json.dumps(s.body, ensure_ascii=False) + json.dumps(s.body) + json.dumps(s.headers)
        for s in stub.requests
    )


def assert_clean(stub: StubLLM) -> None:
    sent = bodies(stub)
    assert stub.count >= 1
    leaked = [c for c in FORBIDDEN if c in sent]
    assert leaked == [], f"sent to the cloud: {leaked}"


def last_usage(usage: UsageStore) -> dict[str, Any]:
    return usage.attempts()[-1]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_redact_sends_no_pii_and_restores_the_answer(kind: str, make_router: RouterFactory) -> None:
    stub = StubLLM(kind, text=MODEL_ANSWER)
    try:
        env = env_for(anthropic=stub) if kind == "anthropic" else env_for(openai=stub)
        router, _ = make_router(env)
        gen = router.generate(pii_request())
        assert_clean(stub)
        sent = bodies(stub)
        for name in ("[EMAIL_1]", "[IBAN_1]", "[PHONE_1]", "[ID_1]"):
            assert name in sent
        assert "placeholders such as [EMAIL_1]" in sent  # the model is told what they are
        assert gen.route == "cloud" and gen.generator == kind
        assert gen.text == RESTORED
        assert "replaced by placeholders" in gen.route_reason
        assert json.loads(gen.pii_detected) == dict.fromkeys(PII_REASONS, 1)
    finally:
        stub.close()


def test_history_turns_are_redacted_too(make_router: RouterFactory, openai_stub: StubLLM) -> None:
    openai_stub.text = "Your earlier address [EMAIL_1] and [PHONE_1] are on file [1]."
    router, _ = make_router(env_for(openai=openai_stub))
    history = (
        Turn("user", f"My e-mail is {EMAIL} and my IBAN {IBAN}"),
        Turn("assistant", f"Thanks, I noted {EMAIL}; call {PHONE} if needed.", Classification.INTERNAL),
    )
    gen = router.generate(pii_request(f"Is {SSN} on file too?", history=history))
    assert_clean(openai_stub)
    messages = openai_stub.requests[0].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "My e-mail is [EMAIL_1] and my IBAN [IBAN_1]"
    assert messages[2]["content"] == "Thanks, I noted [EMAIL_1]; call [PHONE_1] if needed."
    assert messages[3]["content"] == "Is [ID_1] on file too?"
    assert gen.text == f"Your earlier address {EMAIL} and {PHONE} are on file [1]."


class ChoppedStub(StubLLM):
    """Streams its answer in ``piece``-character deltas, so placeholders arrive split."""

    piece = 3

    def _stream(self, h: BaseHTTPRequestHandler, model: str, text: str, *, cut: bool) -> None:
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.end_headers()

        def send(event: str | None, data: Any) -> None:
            head = f"event: {event}\n" if event else ""
            h.wfile.write(
                (head + f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n").encode()
            )
            h.wfile.flush()

        pieces = [text[i : i + self.piece] for i in range(0, len(text), self.piece)]
        if self.kind == "anthropic":
            message: dict[str, Any] = {
                "id": "m",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
            }
            message |= {"stop_reason": None, "stop_sequence": None}
            message["usage"] = {"input_tokens": 10, "output_tokens": 1}
            send("message_start", {"type": "message_start", "message": message})
            block = {"type": "text", "text": ""}
            send("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})
            for p in pieces:
                delta = {"type": "text_delta", "text": p}
                send("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
            send("content_block_stop", {"type": "content_block_stop", "index": 0})
            end = {"stop_reason": "end_turn", "stop_sequence": None}
            send("message_delta", {"type": "message_delta", "delta": end, "usage": {"output_tokens": 5}})
            send("message_stop", {"type": "message_stop"})
            return
        base = {"id": "c", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
        for p in pieces:
            send(None, {**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]})
        send(None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        send(None, {**base, "choices": [], "usage": usage})
        send(None, "[DONE]")


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("piece", [1, 3, 5])
def test_streaming_restores_placeholders_split_across_deltas(
    kind: str, piece: int, make_router: RouterFactory
) -> None:
    stub = ChoppedStub(kind, text=MODEL_ANSWER)
    stub.piece = piece
    try:
        env = env_for(anthropic=stub) if kind == "anthropic" else env_for(openai=stub)
        router, _ = make_router(env)
        deltas: list[str] = []
        gen = router.generate(pii_request(), on_delta=deltas.append)
        assert_clean(stub)
        assert stub.requests[0].body.get("stream") is True
        assert "".join(deltas) == RESTORED == gen.text
        assert len(deltas) > 3  # it really streamed
        for d in deltas:
            assert "EMAIL" not in d and "IBAN_" not in d and "PHONE" not in d and "[ID" not in d
    finally:
        stub.close()


def test_block_refuses_before_any_model_call(
    make_router: RouterFactory, openai_stub: StubLLM, private_stub: StubLLM
) -> None:
    router, usage = make_router(env_for(openai=openai_stub, private=private_stub))
    deltas: list[str] = []
    gen = router.generate(pii_request(pii="block"), on_delta=deltas.append)
    assert openai_stub.count == 0 and private_stub.count == 0 and deltas == []
    assert gen.sources_only and gen.route == "none" and gen.generator == "none"
    assert "an e-mail address" in gen.notice and "doesn't allow personal data" in gen.notice
    for value in FORBIDDEN:
        assert value not in gen.notice
    assert json.loads(gen.pii_detected) == dict.fromkeys(PII_REASONS, 1)
    assert last_usage(usage)["outcome"] == "pii-blocked"


def test_block_also_refuses_secrets_and_history(make_router: RouterFactory, openai_stub: StubLLM) -> None:
    router, _ = make_router(env_for(openai=openai_stub))
    gen = router.generate(
        make_request(
            "Can you check this for me?", pii="block", history=(Turn("user", "my password is Hunter2!"),)
        )
    )
    assert openai_stub.count == 0 and gen.sources_only and "a password or key" in gen.notice


def test_block_ignores_document_details_in_earlier_answers(
    make_router: RouterFactory, openai_stub: StubLLM
) -> None:
    """A help-desk number the bot quoted from a document does not block the follow-up."""
    router, _ = make_router(env_for(openai=openai_stub))
    history = (
        Turn("user", "Who do I call about payslips?"),
        Turn("assistant", f"Call the HR desk on {PHONE} [1].", Classification.INTERNAL),
    )
    gen = router.generate(make_request("And on weekends?", pii="block", history=history))
    assert openai_stub.count == 1 and gen.route == "cloud"
    assert json.loads(gen.pii_detected) == {"phone-number": 1}  # still counted for the audit row


def test_block_lets_clean_questions_through(make_router: RouterFactory, openai_stub: StubLLM) -> None:
    router, _ = make_router(env_for(openai=openai_stub))
    gen = router.generate(make_request(pii="block"))
    assert openai_stub.count == 1 and gen.route == "cloud" and gen.pii_detected == ""


def test_route_private_is_unchanged(
    make_router: RouterFactory, openai_stub: StubLLM, private_stub: StubLLM
) -> None:
    router, _ = make_router(env_for(openai=openai_stub, private=private_stub))
    gen = router.generate(pii_request(pii="route_private"))
    assert openai_stub.count == 0 and private_stub.count == 1
    assert gen.route == "private" and gen.generator == "private"
    assert EMAIL in bodies(private_stub)  # the private model is trusted with the original
    assert json.loads(gen.pii_detected) == dict.fromkeys(PII_REASONS, 1)  # counted all the same


def test_route_private_without_private_model_is_sources_only(
    make_router: RouterFactory, openai_stub: StubLLM
) -> None:
    router, _ = make_router(env_for(openai=openai_stub))
    gen = router.generate(pii_request(pii="route_private"))
    assert openai_stub.count == 0 and gen.sources_only and gen.route == "none"


@pytest.mark.parametrize(
    "change",
    [
        {"label_reasons": (*PII_REASONS, "password")},  # a secret is never redacted and sent
        {"label_reasons": (*PII_REASONS, "department-keyword")},
        {"label_reasons": (*PII_REASONS, "sensitive-topic")},
        {"label_reasons": ("classifier-error",)},
        {"sources": (chunk(1, "Investigations.", label=Classification.CONFIDENTIAL), SICK)},
        {"department_label": Classification.CONFIDENTIAL},
        {"department_label": None},
        {"route": "private"},
        {"history": (Turn("assistant", "an earlier answer"),)},  # unlabelled answer: restricted
        {"label_reasons": ()},  # confidential with no reason given: nothing says it is only PII
    ],
    ids=[
        "secret",
        "keyword",
        "topic",
        "classifier-error",
        "confidential-doc",
        "confidential-dept",
        "unknown-dept-label",
        "pinned-private",
        "unlabelled-history",
        "no-reason",
    ],
)
def test_redact_keeps_other_sensitivity_private(
    change: dict[str, Any], make_router: RouterFactory, openai_stub: StubLLM, private_stub: StubLLM
) -> None:
    router, _ = make_router(env_for(openai=openai_stub, private=private_stub))
    gen = router.generate(pii_request(**change))
    assert openai_stub.count == 0, "nothing may reach the cloud"
    assert private_stub.count == 1 and gen.route == "private"


def test_redact_fails_closed_when_a_detector_still_fires(
    make_router: RouterFactory,
    openai_stub: StubLLM,
    private_stub: StubLLM,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If the span finder ever misses what the classifier saw, nothing goes to the cloud."""
    import bot.sensitivity.redact as redact

    monkeypatch.setattr(redact, "find", lambda text, regions=(): [])
    router, _ = make_router(env_for(openai=openai_stub, private=private_stub))
    gen = router.generate(pii_request())
    assert openai_stub.count == 0 and private_stub.count == 1
    assert gen.route == "private" and "redaction incomplete" in gen.route_reason


def test_redact_also_cleans_requests_the_classifier_did_not_flag(
    make_router: RouterFactory, openai_stub: StubLLM
) -> None:
    """An internal-labelled request of a ``redact`` department is still scrubbed on the way out."""
    openai_stub.text = "Noted [EMAIL_1] [1]."
    router, _ = make_router(env_for(openai=openai_stub))
    gen = router.generate(
        make_request(f"Send it to {EMAIL}", pii="redact", department_label=Classification.INTERNAL)
    )
    assert_clean(openai_stub)
    assert gen.text == f"Noted {EMAIL} [1]." and gen.route == "cloud"


def test_cloud_failure_falls_back_locally_without_leaking(
    make_router: RouterFactory, openai_stub: StubLLM
) -> None:
    openai_stub.default = "500"
    router, _ = make_router(env_for(openai=openai_stub))
    gen = router.generate(pii_request(sources=(VACATION, SICK)))
    assert_clean(openai_stub)
    assert gen.route == "local"


def test_router_type() -> None:
    assert Router.name == "router" and Generation.__dataclass_fields__["pii_detected"].default == ""
