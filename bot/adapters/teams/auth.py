"""Teams settings from the environment, checked before the server starts.

The Bot Framework's own variable names are used (``MicrosoftAppId``, ``MicrosoftAppPassword``,
``MicrosoftAppType``, ``MicrosoftAppTenantId``) plus ``DEPTBOT_TEAMS_TENANTS``, an
allow-list of Microsoft Entra tenant ids, ``DEPTBOT_TEAMS_ANONYMOUS=1``, the opt-in to the
Bot Framework Emulator mode, and ``DEPTBOT_TEAMS_EMULATOR_EMAIL``, who the Emulator's user
is (both for that mode only; with an app id they are an error, so a forgotten development
setting can never name anyone in production).

Why so strict: with an empty ``MicrosoftAppId`` botbuilder silently accepts requests
with no token at all. That is what the Bot Framework Emulator needs on a laptop, and a
hole anywhere else: a same-host reverse proxy that adds no forwarding header makes every
internet request look local. So without an app id every request is refused unless the
Emulator mode was asked for by name (announced at start-up and by ``deptbot check``); even
then only on a loopback address, and the person is only ever the configured address, never
an id the request carries. And because
a member's e-mail comes from *their* tenant's directory, an answer must never go to a
tenant we did not list: the e-mail of a foreign tenant's user proves nothing.

The Bot Framework's token signing keys are fetched off the event loop (``SigningKeys``,
below): botframework-connector would fetch them with blocking ``requests`` inside it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botframework.connector.auth import ChannelValidation
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor
from jwt.algorithms import RSAAlgorithm

from bot.errors import ConfigError

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
APP_TYPES = {
    "multitenant": "MultiTenant",
    "singletenant": "SingleTenant",
    "userassignedmsi": "UserAssignedMSI",
}
TENANTS_VAR = "DEPTBOT_TEAMS_TENANTS"
EMULATOR_VAR = "DEPTBOT_TEAMS_EMULATOR_EMAIL"
ANONYMOUS_VAR = "DEPTBOT_TEAMS_ANONYMOUS"
_YES, _NO = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}
EMAIL_RE = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+")


def is_guid(value: str) -> bool:
    return bool(GUID_RE.match(value or ""))


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"; False for 0.0.0.0, "" and names."""
    host = (host or "").strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TeamsSettings:
    """What the Teams endpoint needs. ``app_id == ""`` is anonymous: every request is refused
    unless ``emulator`` (``DEPTBOT_TEAMS_ANONYMOUS``) opted into local Emulator testing."""

    app_id: str = ""
    app_password: str = ""
    app_type: str = "MultiTenant"
    app_tenant_id: str = ""
    tenants: frozenset[str] = frozenset()  # effective allow-list (lower case); empty = any
    emulator_email: str = ""  # the Emulator user's address (anonymous mode only), lower case
    emulator: bool = False  # DEPTBOT_TEAMS_ANONYMOUS: unauthenticated loopback Emulator requests

    @property
    def anonymous(self) -> bool:
        return not self.app_id

    def describe(self) -> str:
        """One line for ``deptbot check`` and the start-up log: how /api/messages authenticates."""
        if not self.anonymous:
            tenants = ", ".join(sorted(self.tenants))
            return f"teams: app {self.app_id} ({self.app_type}), tenants {tenants}"
        if not self.emulator:
            return (
                "teams: no MicrosoftAppId; /api/messages refuses every request "
                f"({ANONYMOUS_VAR}=1 allows the Bot Framework Emulator on loopback)"
            )
        who = self.emulator_email or f"nobody ({EMULATOR_VAR} is unset: 'I don't know who you are')"
        return (
            f"teams: ANONYMOUS Emulator mode ({ANONYMOUS_VAR}=1): unauthenticated requests from "
            f"this machine are answered as {who}; never use it behind a proxy or in production"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TeamsSettings:
        """Parse and validate; ConfigError names the variable that is wrong."""
        app_id = env.get("MicrosoftAppId", "").strip()
        password = env.get("MicrosoftAppPassword", "").strip()
        raw_type = env.get("MicrosoftAppType", "").strip()
        tenant = env.get("MicrosoftAppTenantId", "").strip().lower()
        tenants = frozenset(t.lower() for t in re.split(r"[\s,;]+", env.get(TENANTS_VAR, "")) if t)
        for t in sorted(tenants):
            if not is_guid(t):
                raise ConfigError(f"{t!r} is not a tenant id (a GUID)", field=TENANTS_VAR)
        if tenant and not is_guid(tenant):
            raise ConfigError("must be your Microsoft Entra tenant id (a GUID)", field="MicrosoftAppTenantId")
        emulator = env.get(EMULATOR_VAR, "").strip().lower()
        if emulator and not EMAIL_RE.fullmatch(emulator):
            raise ConfigError(
                f"{emulator!r} is not one e-mail address (who the Bot Framework Emulator's user is)",
                field=EMULATOR_VAR,
            )
        raw_anonymous = env.get(ANONYMOUS_VAR, "").strip().lower()
        if raw_anonymous not in _YES | _NO:
            raise ConfigError(f"{raw_anonymous!r} is not 1 or 0", field=ANONYMOUS_VAR)
        anonymous = raw_anonymous in _YES
        if not app_id:
            if password:
                raise ConfigError(
                    "is set but MicrosoftAppId is empty; set both (or neither for local development)",
                    field="MicrosoftAppPassword",
                )
            if emulator and not anonymous:
                raise ConfigError(
                    f"names the Emulator's user, but the Emulator mode is off; set {ANONYMOUS_VAR}=1 "
                    "too (local testing only), or unset it",
                    field=EMULATOR_VAR,
                )
            return cls(tenants=tenants, app_tenant_id=tenant, emulator_email=emulator, emulator=anonymous)
        if anonymous:
            raise ConfigError(
                "is for local testing with the Bot Framework Emulator (no MicrosoftAppId) only; "
                "unset it when MicrosoftAppId is set",
                field=ANONYMOUS_VAR,
            )
        if emulator:
            raise ConfigError(
                "is for local testing with the Bot Framework Emulator (no MicrosoftAppId) only; "
                "unset it when MicrosoftAppId is set",
                field=EMULATOR_VAR,
            )
        if not is_guid(app_id):
            raise ConfigError("must be the bot's Microsoft app (client) id, a GUID", field="MicrosoftAppId")
        if not raw_type:
            raise ConfigError(
                "is required with MicrosoftAppId: SingleTenant, MultiTenant or UserAssignedMSI",
                field="MicrosoftAppType",
            )
        app_type = APP_TYPES.get(raw_type.lower())
        if app_type is None:
            raise ConfigError(
                f"{raw_type!r} is not one of SingleTenant, MultiTenant, UserAssignedMSI",
                field="MicrosoftAppType",
            )
        if app_type in ("SingleTenant", "UserAssignedMSI") and not tenant:
            raise ConfigError(
                f"is required when MicrosoftAppType is {app_type}", field="MicrosoftAppTenantId"
            )
        if app_type in ("SingleTenant", "MultiTenant") and not password:
            raise ConfigError(
                f"is required when MicrosoftAppType is {app_type} (the bot's client secret)",
                field="MicrosoftAppPassword",
            )
        if not tenants:
            if app_type == "MultiTenant":
                raise ConfigError(
                    "is required for a MultiTenant bot: list the tenant ids allowed to use it",
                    field=TENANTS_VAR,
                )
            tenants = frozenset({tenant})
        return cls(
            app_id=app_id,
            app_password=password,
            app_type=app_type,
            app_tenant_id=tenant,
            tenants=tenants,
        )

    def bot_framework_config(self) -> Any:
        """The attribute bag ``ConfigurationBotFrameworkAuthentication`` reads."""

        class _Config:
            APP_ID = self.app_id
            APP_PASSWORD = self.app_password
            APP_TYPE = self.app_type
            APP_TENANTID = self.app_tenant_id or None

        return _Config()


def check_teams_settings(settings: Any, host: str) -> None:
    """Refuse to start with unsafe or incomplete Teams settings; ConfigError names the variable.

    ``settings`` is ``bot.settings.Settings`` (its ``env`` snapshot is read); ``host`` is the
    address the server binds to.
    """
    teams = TeamsSettings.from_env(settings.env)
    if teams.emulator and not is_loopback_host(host):
        raise ConfigError(
            f"turns on the unauthenticated Emulator mode, which is for a loopback address only, not {host!r}",
            field=ANONYMOUS_VAR,
        )
    if teams.anonymous and not is_loopback_host(host):
        raise ConfigError(
            f"is not set, so the Teams endpoint would accept unauthenticated requests on {host!r}. "
            "Set MicrosoftAppId/MicrosoftAppPassword/MicrosoftAppType/MicrosoftAppTenantId, "
            "or bind to 127.0.0.1 for local testing with the Bot Framework Emulator",
            field="MicrosoftAppId",
        )


def teams_check(env: Mapping[str, str]) -> tuple[list[ConfigError], list[str]]:
    """For ``deptbot check``: the line saying how /api/messages authenticates (the Emulator
    mode is announced loudly). A wrong Emulator variable is a problem; any other Teams
    variable that ``deptbot serve`` would refuse is a warning line, because the
    ``MicrosoftApp*`` variables may be set for the directory's Graph source alone."""
    if not any(env.get(k) for k in ("MicrosoftAppId", ANONYMOUS_VAR, EMULATOR_VAR, TENANTS_VAR)):
        return [], []  # Teams is not being set up: nothing to say
    try:
        return [], [TeamsSettings.from_env(env).describe()]
    except ConfigError as exc:
        if exc.field in (ANONYMOUS_VAR, EMULATOR_VAR):
            return [ConfigError(exc.problem, file=exc.file or "environment", field=exc.field)], []
        return [], [f"teams: {exc.field}: {exc.problem} (deptbot serve would refuse to start)"]


# ── Bot Framework signing keys, fetched off the event loop ───────────────────────────────
#
# botframework-connector 4.17 validates a token with ``JwtTokenExtractor``, which takes its
# keys from ``_OpenIdMetadata`` objects shared through the class-level
# ``JwtTokenExtractor.metadataCache`` (one per OpenID metadata URL: public cloud, Emulator,
# government, ...). ``_OpenIdMetadata._refresh`` fetches the metadata and the JWKS with
# blocking ``requests.get`` (no timeout) from inside the coroutine, so every key refresh
# stalls the whole server: every Slack ack and Teams request waits behind it. Also, an
# unknown ``kid`` raises IndexError there instead of triggering the hourly re-fetch.
#
# ``use_off_loop_signing_keys`` swaps that cache for one that hands out ``SigningKeys``,
# which has the same ``get(kid)`` contract but fetches in a small dedicated thread pool
# (not the default executor, which answers may fill), one fetch at a time per URL, with a
# timeout, and refreshes ahead of expiry in the background. ``warm`` pre-fetches at start.

KEY_MAX_AGE = 24 * 3600.0  # botframework-connector's own: keys older than a day are re-fetched
KEY_REFRESH_AHEAD = 12 * 3600.0  # past this, answer from the cache and re-fetch in the background
KEY_MISS_INTERVAL = 3600.0  # an unknown kid re-fetches at most once an hour (as upstream)
KEY_FETCH_TIMEOUT = 10.0

_key_pool: concurrent.futures.ThreadPoolExecutor | None = None
_key_pool_lock = threading.Lock()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _key_pool
    with _key_pool_lock:
        if _key_pool is None:
            _key_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=2, thread_name_prefix="deptbot-signing-keys"
            )
        return _key_pool


@dataclass(frozen=True)
class SigningKey:
    """What ``JwtTokenExtractor`` reads from a key: the public key and its endorsements."""

    public_key: Any
    endorsements: list[str]


class SigningKeys:
    """The signing keys published at one OpenID metadata URL, fetched in a worker thread."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._clock = clock
        self._keys: list[dict[str, Any]] = []
        self._fetched: float | None = None
        self._inflight: concurrent.futures.Future[None] | None = None
        self._lock = threading.Lock()

    async def get(self, key_id: str | None) -> SigningKey:
        """The key named ``key_id``; PermissionError when the publisher does not list it."""
        age = self._age()
        if age is None or age > KEY_MAX_AGE:
            await asyncio.wrap_future(self.refresh())
        elif age > KEY_REFRESH_AHEAD:
            self.refresh()  # stale-while-revalidate: this request uses the current keys
        key = self._find(key_id)
        if key is None and (self._age() or 0.0) > KEY_MISS_INTERVAL:
            await asyncio.wrap_future(self.refresh())  # keys may have rotated
            key = self._find(key_id)
        if key is None:
            raise PermissionError("the token's signing key is not published")
        return key

    def refresh(self) -> concurrent.futures.Future[None]:
        """Start a fetch in the key thread pool, or join the one under way."""
        with self._lock:
            if self._inflight is None or self._inflight.done():
                self._inflight = _pool().submit(self._fetch)
            return self._inflight

    def _fetch(self) -> None:
        metadata = _get_json(self.url)
        keys = _get_json(str(metadata["jwks_uri"]))["keys"]
        if not isinstance(keys, list):
            raise ValueError("the JWKS has no key list")
        with self._lock:
            self._keys, self._fetched = keys, self._clock()

    def _age(self) -> float | None:
        with self._lock:
            return None if self._fetched is None else self._clock() - self._fetched

    def _find(self, key_id: str | None) -> SigningKey | None:
        with self._lock:
            found = next((k for k in self._keys if isinstance(k, dict) and k.get("kid") == key_id), None)
        if found is None:
            return None
        return SigningKey(RSAAlgorithm.from_jwk(json.dumps(found)), list(found.get("endorsements", [])))


def _get_json(url: str) -> dict[str, Any]:
    """Blocking GET (runs in the key thread pool only). OSError on network/HTTP trouble."""
    with urllib.request.urlopen(url, timeout=KEY_FETCH_TIMEOUT) as response:
        data = json.loads(response.read())
    if not isinstance(data, dict):
        raise ValueError(f"{url} did not return a JSON object")
    return data


class _SigningKeyCache(dict[str, Any]):
    """Stands in for ``JwtTokenExtractor.metadataCache``: every URL gets a ``SigningKeys``."""

    def get(self, url: str, default: Any = None) -> Any:
        if url not in self:
            self[url] = SigningKeys(url)
        return self[url]


def use_off_loop_signing_keys() -> None:
    """Make botframework-connector's token validation fetch keys off the event loop (idempotent)."""
    if not isinstance(JwtTokenExtractor.metadataCache, _SigningKeyCache):
        JwtTokenExtractor.metadataCache = _SigningKeyCache()


async def warm_signing_keys(url: str | None = None) -> None:
    """Fetch the public cloud's keys (or ``url``'s) in the background, e.g. at server start."""
    use_off_loop_signing_keys()
    target = url or ChannelValidation.open_id_metadata_endpoint
    keys = JwtTokenExtractor.get_open_id_metadata(target)
    if isinstance(keys, SigningKeys):
        await asyncio.wrap_future(keys.refresh())
