"""Anthropic Messages API through the official ``anthropic`` SDK.

Key and endpoint are passed in from the settings' environment snapshot; the SDK retries
429/5xx itself (``max_retries``), honouring ``retry-after`` up to ``max_retry_wait``.
"""

from __future__ import annotations

from typing import Any

import anthropic

from bot.core.ports import DeltaFn
from bot.errors import ProviderError
from bot.llm.prompts import Prompt, count_tokens
from bot.llm.provider import Completion, Failure, map_sdk_error

DEFAULT_BASE_URL = "https://api.anthropic.com"


class DeptbotAnthropic(anthropic.Anthropic):
    """The SDK client with server-requested retry waits capped (the SDK has no cap)."""

    max_retry_wait: float = 10.0

    def _calculate_retry_timeout(self, *args: Any, **kwargs: Any) -> float:
        return min(float(super()._calculate_retry_timeout(*args, **kwargs)), self.max_retry_wait)


class AnthropicProvider:
    """A ``ChatProvider`` on the Messages API (streaming when ``on_delta`` is given)."""

    name = "anthropic"
    trust = "cloud"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        max_retries: int = 2,
        timeout: float = 30.0,
        max_retry_wait: float = 10.0,
    ) -> None:
        self._client = DeptbotAnthropic(
            api_key=api_key, base_url=base_url or DEFAULT_BASE_URL, max_retries=max_retries, timeout=timeout
        )
        self._client.max_retry_wait = max_retry_wait

    def complete(
        self, prompt: Prompt, *, model: str, max_tokens: int, timeout: float, on_delta: DeltaFn | None = None
    ) -> Completion:
        kwargs: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "system": prompt.system,
            "messages": [{"role": r, "content": t} for r, t in prompt.messages],
            "timeout": timeout,
        }
        try:
            if on_delta is None:
                message = self._client.messages.create(**kwargs)
            else:
                with self._client.messages.stream(**kwargs) as stream:
                    for delta in stream.text_stream:
                        if delta:
                            on_delta(delta)
                    message = stream.get_final_message()
                if message.stop_reason is None:
                    raise Failure("stream-cut", "Anthropic stopped in the middle of the answer.")
            text = "".join(
                getattr(b, "text", "") for b in message.content if getattr(b, "type", "") == "text"
            )
            usage = message.usage
            in_tok, out_tok = getattr(usage, "input_tokens", None), getattr(usage, "output_tokens", None)
            model_used = str(message.model or model)
        except ProviderError:  # ours (e.g. the deadline guard in on_delta): already safe to show
            raise
        except Exception as exc:
            raise map_sdk_error(exc, self.name) from exc
        if not text.strip():
            raise Failure("empty", "Anthropic returned an empty answer.")
        reported = isinstance(in_tok, int) and isinstance(out_tok, int)
        return Completion(
            text=text,
            model=model_used,
            input_tokens=in_tok if isinstance(in_tok, int) else prompt.input_tokens,
            output_tokens=out_tok if isinstance(out_tok, int) else count_tokens(text),
            usage_reported=reported,
        )

    def close(self) -> None:
        self._client.close()
