"""The frozen models a department file validates into: Department, Template, Channels,
(the schema of knowledge-folder metadata is ``bot.knowledge.metadata``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from bot.config.access import CHANNEL_PREFIX, check_entries, check_pilot_entry
from bot.config.evals import Evals
from bot.core.templates import check_path
from bot.core.types import Classification

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
ACCESS_FILE = "_access.yaml"
# The embedder profiles ``bot.knowledge.embedders`` ships (a test keeps both lists equal;
# the configuration does not import the knowledge package).
EMBEDDERS = ("minilm", "wordllama")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Template(_Strict):
    """A named task; ``prompt`` must contain ``{input}``. ``skeleton``: a .md/.txt file in
    the department's knowledge folder that the template fills (``bot.core.skeleton``)."""

    description: str
    prompt: str
    allowed: list[str] = Field(default_factory=lambda: ["*"])
    tier: Literal["small", "large"] | None = None
    skeleton: str | None = None

    @field_validator("skeleton")
    @classmethod
    def _skeleton(cls, v: str | None) -> str | None:
        return None if v is None else check_path(v)

    @field_validator("allowed")
    @classmethod
    def _entries(cls, v: list[str]) -> list[str]:
        return check_entries(v)

    @field_validator("prompt")
    @classmethod
    def _has_input(cls, v: str) -> str:
        if "{input}" not in v:
            raise ValueError("must contain the placeholder {input}")
        return v

    def fill(self, text: str) -> str:
        return self.prompt.replace("{input}", text)


class Channels(_Strict):
    slack: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    # Who can read a channel, when narrower or wider than the department's ask list.
    audience: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("audience")
    @classmethod
    def _audience(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        return {k: check_entries(entries) for k, entries in v.items()}


class Alerts(_Strict):
    """Where operations alerts and the weekly digest go (``bot.ops``): a Slack channel id
    and/or a Teams conversation id. None set: each admin gets a direct message."""

    slack: str | None = Field(default=None, pattern=r"^[CGD][A-Z0-9]{6,20}$")
    teams: str | None = Field(default=None, min_length=3, max_length=500, pattern=r"^\S+$")


def _refresh(value: Any) -> int | str | None:
    from bot.ops.schedule import check_refresh

    return check_refresh(value)


class Department(_Strict):
    """One department, as validated from ``departments/<name>.yaml``."""

    name: str
    title: str
    knowledge: Path
    classification: Classification = Classification.INTERNAL
    admins: list[str] = Field(default_factory=list)
    ask: list[str] = Field(default_factory=list)
    templates: dict[str, Template] = Field(default_factory=dict)
    channels: Channels = Field(default_factory=Channels)
    dont_know_below: float = Field(default=0.35, ge=0.0, le=1.0)
    # Fields used by providers (issue 3) and adapters; optional for the core.
    route: Literal["auto", "cloud", "private"] = "auto"
    # Personal data in a question: private model only (today's rule), placeholders to the
    # cloud, or refuse (``bot.sensitivity.redact``; README "PII before the cloud").
    pii: Literal["route_private", "redact", "block"] = "route_private"
    tier: Literal["small", "large"] | None = None
    sensitive_keywords: list[str] = Field(default_factory=list)
    embedder: str | None = None  # None = settings default
    docs_url: str | None = None  # e.g. "https://intranet.example.com/hr/{path}" → citation links
    description: str = ""
    evals: Evals | None = None  # answer-level checks for ``deptbot eval --qa`` (bot.config.evals)
    # Pilot rollout (README "Pilot rollout"): ``enabled: false`` takes no questions at all;
    # ``pilot`` (None = no pilot) narrows ``ask`` to these access entries and to whoever asks
    # in a ``channel:<id>`` it lists. An empty pilot list admits nobody (fail closed).
    enabled: bool = True
    pilot: list[Annotated[str, AfterValidator(check_pilot_entry)]] | None = None
    # Admin console (``bot.admin.insights``): may this department's admins read the text of
    # questions and 👎 comments? False (default): counts and document topics only.
    admins_see_questions: bool = False
    # Operations (``bot.ops``, README "Scheduled refresh, evals and alerts"): refresh every N
    # minutes or on a 5-field UTC cron expression; where alerts and the weekly digest go.
    refresh: Annotated[int | str | None, BeforeValidator(_refresh)] = None
    alerts: Alerts | None = None
    source_file: Path | None = None

    @field_validator("classification", mode="before")
    @classmethod
    def _classification(cls, v: Any) -> Classification:
        if isinstance(v, Classification):
            return v
        try:
            return Classification.parse(str(v))
        except KeyError:
            raise ValueError(f"{v!r} is not one of public, internal, confidential, restricted") from None

    @field_validator("admins", "ask")
    @classmethod
    def _entries(cls, v: list[str]) -> list[str]:
        return check_entries(v)

    @field_validator("embedder")
    @classmethod
    def _embedder(cls, v: str | None) -> str | None:
        """Lower-cased, so an index built with it is not stale for a spelling ("MiniLM");
        an unknown name is refused at load, naming file and line, not at the first refresh.
        Same words as ``deptbot check`` (``bot.knowledge.embedders.embedder_problem``)."""
        if v is None:
            return None
        key = v.strip().lower()
        if key not in EMBEDDERS:
            raise ValueError(f"unknown embedder {v!r}; valid embedders: {', '.join(EMBEDDERS)}")
        return key

    @property
    def pilot_entries(self) -> list[str]:
        """The pilot's access entries (its ``channel:`` entries left out)."""
        return [e for e in self.pilot or () if not e.startswith(CHANNEL_PREFIX)]

    @property
    def pilot_channels(self) -> frozenset[str]:
        """The channel and conversation ids whose askers are in the pilot."""
        return frozenset(e[len(CHANNEL_PREFIX) :] for e in self.pilot or () if e.startswith(CHANNEL_PREFIX))

    @field_validator("docs_url")
    @classmethod
    def _docs_url(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith(("https://", "http://")) or "{path}" not in v):
            raise ValueError("must be an http(s) URL containing {path}, e.g. https://intranet/hr/{path}")
        return v

    def link(self, doc_id: str) -> str:
        """The ``docs_url`` link for a document id ("hr/time-off.md"), or "" when unset."""
        if not self.docs_url:
            return ""
        from urllib.parse import quote

        rel = doc_id.split("/", 1)[1] if "/" in doc_id else doc_id
        return self.docs_url.replace("{path}", quote(rel))

    @field_validator("templates")
    @classmethod
    def _template_names(cls, v: dict[str, Template]) -> dict[str, Template]:
        for name in v:
            if not NAME_RE.match(name):
                raise ValueError(f"template name {name!r} must be lower-case letters, digits, - or _")
        return v
