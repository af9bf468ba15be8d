"""OpenAI Chat Completions through the official ``openai`` SDK — for OpenAI itself and for
the private endpoint (any OpenAI-compatible server: vLLM, Ollama, llama.cpp, LM Studio).

The two differ only in name, trust tier, base URL/key, and the output-limit field:
OpenAI's current models take ``max_completion_tokens``; compatible servers reliably
understand ``max_tokens``. Streaming asks for usage in the last chunk
(``stream_options.include_usage``); a server that sends none is recorded with estimates.

The private endpoint gets ``direct=True``: its HTTP client ignores ``HTTP(S)_PROXY`` and
``ALL_PROXY`` from the environment. Confidential prompts go to it precisely so that they
stay on the company's own network; a machine-wide egress proxy (set for the cloud
providers) would otherwise receive them in clear text. httpx uses environment proxies
only when no transport is passed (``allow_env_proxies = trust_env and transport is
None``), so an explicit transport turns them off while ``SSL_CERT_FILE``/``SSL_CERT_DIR``
(an internal CA) still apply; ``trust_env=False`` would drop those too.
"""

from __future__ import annotations

from typing import Any

import httpx2  # the openai SDK's HTTP library (its own dependency): for the transport only
import openai

from bot.core.ports import DeltaFn
from bot.errors import ProviderError
from bot.llm.prompts import Prompt, count_tokens
from bot.llm.provider import Completion, Failure, map_sdk_error

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _who(name: str) -> str:
    return "OpenAI" if name == "openai" else "The private model"


class DeptbotOpenAI(openai.OpenAI):
    """The SDK client with server-requested retry waits capped at ``max_retry_wait``."""

    max_retry_wait: float = 10.0

    def _calculate_retry_timeout(self, *args: Any, **kwargs: Any) -> float:
        return min(float(super()._calculate_retry_timeout(*args, **kwargs)), self.max_retry_wait)


class OpenAIProvider:
    """A ``ChatProvider`` on Chat Completions; ``trust="private"`` for the private endpoint."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        name: str = "openai",
        trust: str = "cloud",
        max_retries: int = 2,
        timeout: float = 30.0,
        max_retry_wait: float = 10.0,
        limit_field: str | None = None,
        direct: bool = False,
    ) -> None:
        self.name = name
        self.trust = trust
        self.direct = direct
        http_client = None
        if direct:  # never through an environment proxy (module docstring)
            limits = httpx2.Limits(max_connections=100, max_keepalive_connections=20)
            http_client = openai.DefaultHttpxClient(transport=httpx2.HTTPTransport(limits=limits))
        # Pass everything explicitly so the SDK never falls back to os.environ.
        self._client = DeptbotOpenAI(
            api_key=api_key,
            base_url=base_url or DEFAULT_BASE_URL,
            organization=None,
            project=None,
            max_retries=max_retries,
            timeout=timeout,
            http_client=http_client,
        )
        self._client.max_retry_wait = max_retry_wait
        self._limit_field = limit_field or ("max_completion_tokens" if trust == "cloud" else "max_tokens")

    def complete(
        self, prompt: Prompt, *, model: str, max_tokens: int, timeout: float, on_delta: DeltaFn | None = None
    ) -> Completion:
        messages = [{"role": "system", "content": prompt.system}]
        messages += [{"role": r, "content": t} for r, t in prompt.messages]
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "timeout": timeout}
        kwargs[self._limit_field] = max_tokens
        in_tok: int | None = None
        out_tok: int | None = None
        try:
            if on_delta is None:
                resp = self._client.chat.completions.create(**kwargs)
                choice = resp.choices[0]
                text = choice.message.content or ""
                model_used = resp.model or model
                if resp.usage is not None:
                    in_tok, out_tok = resp.usage.prompt_tokens, resp.usage.completion_tokens
            else:
                parts: list[str] = []
                model_used = model
                finished = False
                stream = self._client.chat.completions.create(
                    **kwargs, stream=True, stream_options={"include_usage": True}
                )
                with stream:
                    for chunk in stream:
                        model_used = chunk.model or model_used
                        if chunk.usage is not None:
                            in_tok, out_tok = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                        for ch in chunk.choices:
                            finished = finished or bool(ch.finish_reason)
                            delta = ch.delta.content if ch.delta else None
                            if delta:
                                parts.append(delta)
                                on_delta(delta)
                text = "".join(parts)
                if not finished:
                    raise Failure("stream-cut", f"{_who(self.name)} stopped in the middle of the answer.")
        except ProviderError:  # ours (e.g. the deadline guard in on_delta): already safe to show
            raise
        except Exception as exc:
            raise map_sdk_error(exc, self.name) from exc
        if not text.strip():
            raise Failure("empty", f"{_who(self.name)} returned an empty answer.")
        reported = isinstance(in_tok, int) and isinstance(out_tok, int)
        return Completion(
            text=text,
            model=str(model_used),
            input_tokens=in_tok if isinstance(in_tok, int) else prompt.input_tokens,
            output_tokens=out_tok if isinstance(out_tok, int) else count_tokens(text),
            usage_reported=reported,
        )

    def close(self) -> None:
        self._client.close()
