"""One audit row per request, built from whatever the request reached.

Document ids, never document text; the asker's own question is kept (in its own table,
see ``bot.store.audit``) so it can be erased or encrypted separately.
"""

from __future__ import annotations

from datetime import datetime

from bot.config import Department
from bot.core.ports import AuditEntry
from bot.core.types import Answer, Decision, Message, Principal, Status

MAX_QUESTION_CHARS = 4000


def audit_entry(
    *,
    request_id: str,
    time: datetime,
    message: Message,
    principal: Principal | None,
    department: Department | None,
    decision: Decision | None,
    answer: Answer | None,
    status: Status | None,
    error: str,
    latency_ms: float,
) -> AuditEntry:
    st = status or (answer.status if answer else Status.ERROR)
    allowed = decision.allowed if decision else False
    if st == Status.DENIED:
        verdict = "denied"
    elif allowed:
        verdict = "allowed"
    else:
        verdict = "error"
    return AuditEntry(
        request_id=request_id,
        time=time,
        user=principal.email if principal else (message.email or message.user_id),
        platform=message.platform,
        decision=verdict,
        rule=decision.rule if decision else "",
        status=st.value,
        department=department.name if department else None,
        template=message.template,
        question=message.text[:MAX_QUESTION_CHARS],
        doc_ids=tuple(dict.fromkeys(c.doc_id for c in answer.citations)) if answer else (),
        generator=answer.generator if answer else "",
        model=answer.model if answer else "",
        route=answer.route if answer else "",
        route_reason=answer.route_reason if answer else "",
        input_tokens=answer.usage.input_tokens if answer else 0,
        output_tokens=answer.usage.output_tokens if answer else 0,
        cost=answer.usage.cost if answer else 0.0,
        confidence=answer.confidence if answer else 0.0,
        retrieve_ms=answer.timings.retrieve_ms if answer else 0.0,
        generate_ms=answer.timings.generate_ms if answer else 0.0,
        latency_ms=latency_ms,
        cache_hit=answer.cache_hit if answer else False,
        channel=message.channel,
        error=error,
    )
