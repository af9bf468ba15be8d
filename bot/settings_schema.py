"""The schema of ``bot/settings.toml``: every section and key, typed and checked.

The packaged file stays the single source of the defaults: no field here has a default,
and every validation merges the packaged values under what it is given, so a key missing
from ``settings.toml`` (or one the schema does not know) fails the tests at once.

Values from a settings file are checked strictly (``top_k = "6"`` is wrong, as it is in
TOML); values from the environment arrive as text and are converted (``"8"`` → 8). The
environment is read by pydantic-settings: ``DEPTBOT_<SECTION>__<KEY>``, case-insensitive,
lists and tables written as JSON. :func:`validate` turns every problem into a ConfigError
naming the file and line (or the variable) and the dotted setting.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict, SettingsError

from bot.errors import ConfigError

DEFAULTS_FILE = Path(__file__).with_name("settings.toml")
ENV_PREFIX, ENV_DELIMITER = "DEPTBOT_", "__"
ENVIRONMENT = "environment"  # ConfigError.file for a problem in an environment variable

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retrieval(_Section):
    embedder: Literal["wordllama", "minilm"]
    fusion: Literal["minmax", "rrf"]
    top_k: int = Field(ge=1, le=100)
    all_terms_first: bool  # lexical.all_terms_rank; off only to compare with plain BM25 order


def _pair(v: list[float]) -> list[float]:
    if len(v) != 2 or min(v) < 0:
        raise ValueError("must be [input, output] US dollars per million tokens (0 or more)")
    return v


Price = Annotated[list[float], AfterValidator(_pair)]


class Models(_Section):
    """Model names per tier; empty = none configured for that tier."""

    small: str
    large: str


class LLM(_Section):
    cloud_order: list[Literal["anthropic", "openai"]]
    max_tokens: int = Field(ge=1)
    timeout_seconds: float = Field(gt=0)
    deadline_seconds: float = Field(gt=0)
    max_retries: int = Field(ge=0, le=10)
    history_tokens: int = Field(ge=0)
    source_tokens: int = Field(ge=0)
    breaker_failures: int = Field(ge=1)
    breaker_cooldown_seconds: float = Field(ge=0)
    large_question_chars: int = Field(ge=0)
    large_source_docs: int = Field(ge=1)
    estimate_margin: float = Field(ge=1.0)
    anthropic: Models
    openai: Models
    private: Models
    prices: dict[str, Price]

    @field_validator("cloud_order")
    @classmethod
    def _once_each(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("names a provider more than once")
        return v


class Budgets(_Section):
    user_daily_tokens: int = Field(ge=0)
    user_daily_cost: float = Field(ge=0)
    department_daily_tokens: int = Field(ge=0)
    department_daily_cost: float = Field(ge=0)


class Cache(_Section):
    enabled: bool
    backend: Literal["sqlite", "memory"]
    ttl_seconds: float = Field(ge=0)
    max_entries: int = Field(ge=1)


class Knowledge(_Section):
    watch: Literal["auto", "events", "poll", "off"]
    watch_poll_seconds: float = Field(gt=0)
    watch_debounce_seconds: float = Field(ge=0)
    watch_files_per_tick: int = Field(ge=0)
    follow_links: Literal["never", "inside"]
    max_file_mb: float = Field(gt=0)
    max_decompressed_mb: float = Field(gt=0)
    max_pdf_pages: int = Field(ge=1)
    max_chunks_per_file: int = Field(ge=1)
    front_matter_ignore: list[str]
    allowed_roots: list[str]  # absolute folders: checked by bot.config.knowledge_roots
    build_memory_mb: float = Field(default=256, ge=8)  # bot.knowledge.index: batch ceiling
    ann_threshold: int = Field(default=100_000, ge=1)  # bot.knowledge.ann: chunks before ANN
    dense: Literal["local", "pgvector"] = "local"  # bot.knowledge.pg_dense: ANN's source
    sync_seconds: float = Field(default=2, gt=0)  # bot.knowledge.pg_sync: replicas poll kb_current

    @field_validator("front_matter_ignore")
    @classmethod
    def _ignorable(cls, v: list[str]) -> list[str]:
        from bot.knowledge.metadata import check_ignored_keys

        return list(check_ignored_keys(v))


class Access(_Section):
    max_channel_members: int = Field(ge=1)
    members_ttl_seconds: float = Field(ge=0)
    ignore_bot_members: bool
    slack_workspace_audience: list[str]

    @field_validator("slack_workspace_audience")
    @classmethod
    def _entries(cls, v: list[str]) -> list[str]:
        from bot.config import check_entries  # bot.config imports bot.settings

        return check_entries(v)


class Reload(_Section):
    reload_seconds: float = Field(ge=0)


class DirectorySettings(_Section):
    """Groups read from Slack, Entra ID or SCIM (bot.directory.sync)."""

    ttl_seconds: float = Field(ge=1)
    grace_seconds: float = Field(ge=0, le=900)  # "short": a longer grace defeats failing closed
    timeout_seconds: float = Field(gt=0, le=120)


class RuntimeSettings(_Section):
    """Threads and the in-flight cap of a server (bot.adapters.runtime)."""

    answer_threads: int = Field(ge=1, le=1024)
    quick_threads: int = Field(ge=1, le=64)
    report_threads: int = Field(ge=1, le=64)  # the admin console's own pool
    max_in_flight: int = Field(ge=1, le=100_000)
    claim_lease_seconds: float = Field(default=0, ge=0, le=24 * 3600)  # 0: 2 x llm.deadline_seconds


class Privacy(_Section):
    """Encryption at rest (bot.governance.keys, bot.governance.vault)."""

    master_key_file: str  # empty: DEPTBOT_MASTER_KEY, else the built-in default key


class AuditSettings(_Section):
    """The audit chain's key and daily checkpoint (bot.governance.chain)."""

    key_file: str  # empty: DEPTBOT_AUDIT_KEY, else <state>/keys/audit.key
    checkpoint_log: bool


class DatabaseSettings(_Section):
    """The PostgreSQL pool when DEPTBOT_DATABASE_URL is set (bot.store.backend.PoolLimits)."""

    pool_min_size: int = Field(default=1, ge=0, le=1000)
    pool_max_size: int = Field(default=10, ge=1, le=1000)
    connect_timeout_seconds: float = Field(default=5, gt=0, le=300)
    statement_timeout_seconds: float = Field(default=30, ge=0)


class Retention(_Section):
    """Days each kind of data is kept, 0 = forever (bot.governance.retention)."""

    text_days: int = Field(ge=0)
    feedback_days: int = Field(ge=0)
    cache_days: int = Field(ge=0)
    usage_days: int = Field(ge=0)
    audit_days: int = Field(ge=0)
    admin_events_days: int = Field(ge=0)  # the console's trail (bot.store.admin_sessions)
    batch: int = Field(ge=1, le=100_000)


class MetricsSettings(_Section):
    """``/metrics`` (bot.adapters.metrics): served at all, and the bearer token it needs."""

    enabled: bool
    token: str  # empty: only a server bound to loopback serves /metrics


class LoggingSettings(_Section):
    """Log line format (bot.logs): "text" for people, "json" (one object a line) for collectors."""

    format: Literal["text", "json"]


class AdminSettings(_Section):
    """The admin console (bot.admin): sign-in links, sessions and failed sign-in limits."""

    enabled: bool
    public_url: str = Field(pattern=r"^https?://[^/?#\s]+/?$")  # scheme://host[:port], no path
    link_minutes: int = Field(ge=1, le=60)
    idle_minutes: int = Field(ge=1, le=24 * 60)
    session_hours: int = Field(ge=1, le=7 * 24)
    max_failed_signins: int = Field(ge=1, le=10_000)


def _crontab(value: str) -> str:
    from bot.ops.schedule import check_refresh

    if value.strip().isdigit():
        raise ValueError('must be a 5-field cron expression, e.g. "0 8 * * 1"')
    checked = check_refresh(value)
    assert isinstance(checked, str)
    return checked


class OpsSettings(_Section):
    """Scheduled work in ``deptbot serve`` (bot.ops): refresh/eval jobs, alerts, the digest."""

    enabled: bool
    digest: Annotated[str, AfterValidator(_crontab)]  # UTC cron; "" is not allowed, use digest_enabled
    digest_enabled: bool
    lease_seconds: int = Field(ge=30, le=24 * 3600)
    baseline_days: int = Field(ge=2, le=90)
    min_questions: int = Field(ge=1)
    rate_jump: float = Field(gt=0, le=1)
    min_votes: int = Field(ge=1)
    psi_threshold: float = Field(gt=0)
    psi_min_samples: int = Field(ge=10)
    budget_share: float = Field(gt=0, le=1)
    teams_service_url: str = Field(pattern=r"^(https?://\S+)?$")


class SettingsModel(BaseModel):
    """The whole settings file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retrieval: Retrieval
    llm: LLM
    budgets: Budgets
    cache: Cache
    knowledge: Knowledge
    access: Access
    config: Reload
    directory: DirectorySettings
    runtime: RuntimeSettings
    audit: AuditSettings
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    retention: Retention
    privacy: Privacy
    metrics: MetricsSettings
    logging: LoggingSettings
    admin: AdminSettings
    ops: OpsSettings


class EnvRule(BaseSettings, SettingsModel):
    """How pydantic-settings reads the environment: ``DEPTBOT_<SECTION>__<KEY>``, any case.
    Used only as the source's description (never instantiated: validation is ours)."""

    model_config = SettingsConfigDict(
        extra="forbid", env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, case_sensitive=False
    )


SECTIONS: Mapping[str, type[_Section]] = {
    name: info.annotation
    for name, info in SettingsModel.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, _Section)
}


# ── defaults and merging ───────────────────────────────────────────────────────────────


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("settings file does not exist", file=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"is not valid TOML ({exc})", file=path) from None


@cache
def packaged() -> Mapping[str, Any]:
    """The packaged defaults (read once; callers must not modify them)."""
    return read_toml(DEFAULTS_FILE)


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``; tables merge key by key, everything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        old = out.get(k)
        out[k] = merge(old, v) if isinstance(v, Mapping) and isinstance(old, Mapping) else v
    return out


def parse_section(model: type[M], data: Mapping[str, Any], name: str, *, file: Path | str | None = None) -> M:
    """One ``[name]`` table (missing keys from the packaged defaults) as ``model``; the
    first problem is a ConfigError naming ``name.key``."""
    try:
        return model.model_validate(merge(packaged()[name], data), strict=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(_problem(err, (name,)), file=file, field=dotted((name, *err["loc"]))) from None


# ── whole-file validation ──────────────────────────────────────────────────────────────


def validate(
    mine: Mapping[str, Any], env: Mapping[str, str], *, file: Path | None = None
) -> tuple[SettingsModel, list[ConfigError]]:
    """The packaged defaults, then ``mine`` (read from ``file``), then ``env``, checked.

    Returns the settings and every problem. With problems, the settings hold the packaged
    default in place of each bad value, so ``deptbot check`` can go on checking the rest.
    """
    data = merge(packaged(), mine)
    problems: list[ConfigError] = []
    bad: list[Loc] = []
    try:
        SettingsModel.model_validate(data, strict=True)
    except ValidationError as exc:
        for err in exc.errors():
            where = file if file and _has(mine, err["loc"]) else DEFAULTS_FILE
            line = _line(where.read_text(errors="replace"), err["loc"])
            problems.append(ConfigError(_problem(err, ()), file=where, line=line, field=dotted(err["loc"])))
            bad.append(err["loc"])
    problems.sort(key=lambda p: (p.file != str(file), p.line or 0))  # in the order of the file
    overrides, unusable = _from_env(env)
    problems += unusable
    merged = merge(data, overrides)
    try:
        result = SettingsModel.model_validate(merged)
    except ValidationError as exc:
        for err in exc.errors():
            var = _variable(env, err["loc"])
            if var is not None:
                problems.append(_env_problem(var, err))
            elif err["loc"] not in bad:  # cannot happen: strict finds more than lax
                problems.append(ConfigError(_problem(err, ()), file=file, field=dotted(err["loc"])))
            bad.append(err["loc"])
    if bad:
        result = _repaired(merged, bad)
    return result, problems


def _repaired(data: Mapping[str, Any], bad: Iterable[Loc]) -> SettingsModel:
    """``data`` with each bad key (or section) back at its packaged default."""
    fixed = merge(data, {})
    for loc in bad:
        section = str(loc[0])
        default = packaged().get(section)
        if len(loc) == 1 or not isinstance(fixed.get(section), Mapping) or default is None:
            fixed.pop(section, None)
            if default is not None:
                fixed[section] = default
            continue
        key = str(loc[1])
        table = dict(fixed[section])
        table.pop(key, None)
        if key in default:
            table[key] = default[key]
        fixed[section] = table
    try:
        return SettingsModel.model_validate(fixed)
    except ValidationError:
        return SettingsModel.model_validate(packaged())


# ── the environment ────────────────────────────────────────────────────────────────────


def _settings_vars(env: Mapping[str, str]) -> dict[str, str]:
    """The variables that name a setting or a section: ``DEPTBOT_X__Y`` or ``DEPTBOT_<SECTION>``."""
    out = {}
    for name, value in env.items():
        upper = name.upper()
        rest = upper[len(ENV_PREFIX) :].lower()
        if upper.startswith(ENV_PREFIX) and (ENV_DELIMITER in rest or rest in SECTIONS):
            out[name] = value
    return out


def _source(env: Mapping[str, str]) -> dict[str, Any]:
    source = EnvSettingsSource(EnvRule)
    source.env_vars = {k.lower(): v for k, v in env.items()}  # the snapshot, not os.environ
    return source()


def _from_env(env: Mapping[str, str]) -> tuple[dict[str, Any], list[ConfigError]]:
    """Nested overrides from the environment, and the variables that cannot be used."""
    problems: list[ConfigError] = []
    usable: dict[str, str] = {}
    for name, value in _settings_vars(env).items():
        section = name[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER)[0]
        if section not in SECTIONS:
            near = difflib.get_close_matches(section, SECTIONS, n=1)
            hint = f"; did you mean {ENV_PREFIX}{near[0].upper()}{ENV_DELIMITER}…?" if near else ""
            problems.append(ConfigError(f"unknown section {section}{hint}", file=ENVIRONMENT, field=name))
            continue
        try:
            _source({name: value})
        except SettingsError:
            problems.append(
                ConfigError(
                    f"a list or table must be written as JSON (e.g. '[\"openai\"]'), got {_shown(value)}",
                    file=ENVIRONMENT,
                    field=name,
                )
            )
            continue
        usable[name] = value
    return _source(usable), problems


def _path(var: str) -> tuple[str, ...]:
    return tuple(var[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER))


def _variable(env: Mapping[str, str], loc: Loc) -> str | None:
    """The variable that set the value at ``loc`` (the most specific one), if any."""
    names = [str(part).lower() for part in loc if isinstance(part, str)]
    found = [v for v in _settings_vars(env) if list(_path(v)) == names[: len(_path(v))]]
    return max(found, key=lambda v: len(_path(v)), default=None)


def _env_problem(var: str, err: ErrorDetails) -> ConfigError:
    loc = err["loc"]
    if err["type"] == "extra_forbidden":
        parent = _fields(loc[:-1])
        near = difflib.get_close_matches(str(loc[-1]), parent, n=1)
        hint = (
            f"; did you mean {ENV_PREFIX}{ENV_DELIMITER.join(str(p).upper() for p in (*loc[:-1], near[0]))}?"
            if near
            else ""
        )
        return ConfigError(f"unknown setting {dotted(loc)}{hint}", file=ENVIRONMENT, field=var)
    return ConfigError(f"{_problem(err, ())} (setting {dotted(loc)})", file=ENVIRONMENT, field=var)


# ── messages ───────────────────────────────────────────────────────────────────────────


def dotted(loc: Sequence[str | int]) -> str:
    """``("llm", "cloud_order", 1)`` → ``llm.cloud_order[1]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fields(loc: Loc) -> list[str]:
    """The keys the table at ``loc`` may hold (empty when it is not a known table)."""
    model: type[BaseModel] = SettingsModel
    for part in loc:
        info = model.model_fields.get(str(part))
        if info is None or not (isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)):
            return []
        model = info.annotation
    return list(model.model_fields)


_KINDS = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}
_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("more than", "gt"),
    "less_than_equal": ("at most", "le"),
    "less_than": ("less than", "lt"),
}


def _problem(err: ErrorDetails, prefix: Loc) -> str:
    """A short sentence for one pydantic error (``prefix`` + its loc is the setting)."""
    kind, loc, ctx = err["type"], (*prefix, *err["loc"]), err.get("ctx") or {}
    got = f", got {_shown(err['input'])}"
    if kind == "extra_forbidden":
        parent = _fields(loc[:-1])
        near = difflib.get_close_matches(str(loc[-1]), parent, n=1)
        if len(loc) == 1:
            return "unknown section" + (
                f"; did you mean [{near[0]}]?" if near else f" (known: {', '.join(parent)})"
            )
        return "unknown setting" + (
            f"; did you mean {near[0]}?" if near else f" (known: {', '.join(parent)})"
        )
    if kind == "missing":
        return "is required"
    if kind in _KINDS:
        return f"must be {_KINDS[kind]}{got}"
    if kind in _BOUNDS:
        words, key = _BOUNDS[kind]
        bound = ctx.get(key)
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        return f"must be {words} {bound}{got}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        near = difflib.get_close_matches(str(err["input"]), choices, n=1)
        return f"must be {ctx.get('expected')}{got}" + (f"; did you mean {near[0]!r}?" if near else "")
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return str(err["msg"])[:1].lower() + str(err["msg"])[1:] + got


# ── where in the file ──────────────────────────────────────────────────────────────────


def _has(data: Mapping[str, Any], loc: Loc) -> bool:
    """Whether ``data`` (one file) holds the section and key that ``loc`` starts with."""
    node: Any = data
    for part in loc[:2]:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


_HEADER = re.compile(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")


def _unquote(name: str) -> str:
    name = name.strip()
    return name[1:-1] if len(name) > 1 and name[0] == name[-1] and name[0] in "\"'" else name


def _table(header: str) -> tuple[str, ...]:
    return tuple(_unquote(p) for p in re.findall(r"\"[^\"]*\"|'[^']*'|[^.]+", header))


def _line(text: str, loc: Loc) -> int | None:
    """The line of the key (or table header) at ``loc``, by a plain search of the text:
    tomllib keeps no positions. None when it is not written in that simple form."""
    end = next((i for i, p in enumerate(loc) if isinstance(p, int)), len(loc))
    names = tuple(str(p) for p in loc[:end])
    wanted: list[tuple[tuple[str, ...], str | None]] = [(names, None)]
    wanted += [(names[:i], names[i]) for i in range(len(names) - 1, -1, -1)]
    lines = text.splitlines()
    for table, key in wanted:
        header: tuple[str, ...] = ()
        for number, raw in enumerate(lines, 1):
            if m := _HEADER.match(raw):
                header = _table(m.group(1))
                if key is None and header == table:
                    return number
            elif (
                key is not None and header == table and (k := _KEY.match(raw)) and _unquote(k.group(1)) == key
            ):
                return number
    return None
