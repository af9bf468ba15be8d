"""Microsoft Entra ID groups as a group source: ``entra: <group object id>``.

Per ``members(ref)``:

1. An app-only token from ``msal`` (client credentials, scope ``{graph host}/.default``).
   msal caches it until shortly before it expires; when Graph still answers 401 (revoked,
   clock skew) the cached token is dropped and a new one requested, once per call.
   Instance discovery is off: the authority is the operator's configured host (sovereign
   clouds included), and msal never calls ``login.microsoftonline.com`` on its own.
2. ``GET {graph}/groups/{id}/transitiveMembers/microsoft.graph.user``
   ``?$select=mail,userPrincipalName,accountEnabled&$top=999`` — nested groups flattened,
   only users (the cast), the page size Graph allows at most — then every
   ``@odata.nextLink`` as given, as long as it stays on the configured Graph scheme, host,
   port and version path (anything else is refused: the bearer token never leaves Graph).
3. 429, 503 and 504 are retried after ``Retry-After`` seconds (or 1, 2, 4 s without one),
   at most ``MAX_RETRIES`` times per request; a ``Retry-After`` longer than ``MAX_WAIT``
   ends this refresh instead of stalling the sync thread.

Who counts: ``accountEnabled`` false is not a member. The address is ``mail`` (the
mailbox's primary SMTP address) when set, else ``userPrincipalName`` when that is a plain
address — the same rule the Teams adapter uses to name the person asking
(``roster.member_email``), so a member and the asker resolve to the same string. The UPN is
only a sign-in name ("by convention" the e-mail, says Graph): for cloud accounts without a
mailbox it is the only address there is, but a guest's UPN
(``alice_contoso.com#EXT#@tenant.onmicrosoft.com``) is nobody's address, and decoding it is
ambiguous (which ``_`` was the ``@``?), so a guest without ``mail`` is skipped. Skipping
only narrows the group, and that person could not be matched anyway. A user returned
*without* ``userPrincipalName`` or ``accountEnabled`` is different: Graph sends such
"limited information" objects when the app may read the group but not users
(User.Read.All missing), and that is a ``SourceError``, not a silently empty group.

HTTP: Graph is called with the standard library (``urllib``, TLS with the system trust
store, explicit timeouts, redirects refused), so deptbot declares no HTTP client of its
own for it; msal uses its own ``requests`` session for the token endpoint.

Failures are ``SourceError`` with a short reason ("group not found", "HTTP 403 from
Microsoft Graph: …", "token request failed: invalid_client (AADSTS7000215)"), never a
partial list, never the client secret, a token or a response body (nor in the logs).
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

import msal

from bot.directory.source import SourceError

log = logging.getLogger(__name__)

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,254}")  # a GUID or a verified domain name
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")  # as bot/adapters/teams/roster.py
ERROR_CODE = re.compile(r"[a-z_]{1,60}")  # OAuth "error" values; anything else is not echoed
PERMISSIONS = "GroupMember.Read.All and User.Read.All"
SELECT = "$select=mail,userPrincipalName,accountEnabled&$top=999"  # 999: Graph's largest page
RETRYABLE = frozenset({429, 503, 504})
MAX_RETRIES = 3  # per request
MAX_WAIT = 30.0  # seconds; a longer Retry-After ends this refresh
MAX_PAGES = 5000  # ~5 million users: a nextLink loop, not a directory
MAX_BODY = 32 * 1024 * 1024  # bytes per page


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Graph does not redirect these calls; following one would carry the bearer token."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class EntraGroupSource:
    """Members of Entra ID groups, read from Microsoft Graph with application permissions.

    Needs the application permissions GroupMember.Read.All (the membership) and
    User.Read.All (``accountEnabled``, ``mail`` of every member), admin-consented. Raises
    ``ValueError`` at construction for a configuration that can never work (empty
    credentials, a non-https URL, a malformed tenant); everything at call time is a
    ``SourceError``. Blocking; meant for the directory sync's background thread.
    """

    kind = "entra"

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        authority_url: str = "https://login.microsoftonline.com",
        graph_url: str = "https://graph.microsoft.com/v1.0",
        timeout: float = 10.0,
    ) -> None:
        if not TENANT.fullmatch(tenant_id or ""):
            raise ValueError("Entra group source: tenant_id must be the tenant's id or domain")
        if not (client_id or "").strip() or not client_secret:
            raise ValueError("Entra group source: client_id and client_secret are required")
        for name, url in (("authority_url", authority_url), ("graph_url", graph_url)):
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
                raise ValueError(f"Entra group source: {name} must be an https:// URL")
        if timeout <= 0:
            raise ValueError("Entra group source: timeout must be positive")
        self._tenant = tenant_id
        self._client_id = client_id.strip()
        self._secret = client_secret
        self._authority = f"{authority_url.rstrip('/')}/{tenant_id}"
        self._graph = graph_url.rstrip("/")
        graph = urlsplit(self._graph)
        self._graph_origin = (graph.scheme, graph.netloc.lower())
        self._scope = f"{graph.scheme}://{graph.netloc}/.default"
        self._timeout = timeout
        self._lock = threading.Lock()
        self._app: Any = None  # msal.ConfidentialClientApplication, built on first use
        self._opener = urllib.request.build_opener(
            _NoRedirect(), urllib.request.HTTPSHandler(context=ssl.create_default_context())
        )

    def __repr__(self) -> str:
        return f"EntraGroupSource(tenant_id={self._tenant!r}, client_id={self._client_id!r})"

    def members(self, ref: str) -> frozenset[str]:
        group = ref.strip().lower() if isinstance(ref, str) else ""
        if not GUID.fullmatch(group):
            raise SourceError("not a group object id (a GUID)")
        url: str | None = f"{self._graph}/groups/{group}/transitiveMembers/microsoft.graph.user?{SELECT}"
        call = _Call()
        emails: set[str] = set()
        disabled = unnamed = pages = 0
        seen: set[str] = set()
        while url is not None:
            seen.add(url)
            pages += 1
            if pages > MAX_PAGES:
                raise SourceError("too many pages from Microsoft Graph")
            page = self._get(url, call)
            for user in _users(page):
                address = _address(user)
                if address:
                    emails.add(address)
                elif user["accountEnabled"]:
                    unnamed += 1
                else:
                    disabled += 1
            url = self._next(page, seen)
        log.debug(
            "entra group %s: %d members; skipped %d disabled, %d without an address; %d pages",
            *(group, len(emails), disabled, unnamed, pages),
        )
        return frozenset(emails)

    # --- Graph -------------------------------------------------------------------------

    def _get(self, url: str, call: _Call) -> Mapping[str, Any]:
        retries = 0
        while True:
            status, headers, body = self._fetch(url, self._token())
            if status == 200:
                return _json(body)
            if status == 401 and not call.token_refreshed:
                call.token_refreshed = True
                log.info("Microsoft Graph rejected the cached token; requesting a new one")
                self._drop_token()
                continue
            if status in RETRYABLE and retries < MAX_RETRIES:
                wait = _retry_after(headers.get("Retry-After"), retries)
                if wait > MAX_WAIT:
                    raise SourceError(f"HTTP {status} from Microsoft Graph: retry after {wait:.0f} s")
                log.info("Microsoft Graph answered %d; retrying in %.1f s", status, wait)
                time.sleep(wait)
                retries += 1
                continue
            raise SourceError(_reason(status, retries))

    def _fetch(self, url: str, token: str) -> tuple[int, Message, bytes]:
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                body = response.read(MAX_BODY + 1)
                if len(body) > MAX_BODY:
                    raise SourceError("page from Microsoft Graph too large")
                return response.status, response.headers, body
        except urllib.error.HTTPError as error:  # any status but 2xx, redirects included
            error.close()
            return error.code, error.headers, b""
        except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, resets
            log.info("Microsoft Graph unreachable: %s", type(error).__name__)
            raise SourceError("cannot reach Microsoft Graph") from None

    def _next(self, page: Mapping[str, Any], seen: set[str]) -> str | None:
        link = page.get("@odata.nextLink")
        if link is None:
            return None
        parts = urlsplit(link) if isinstance(link, str) else None
        if (
            parts is None
            or (parts.scheme, parts.netloc.lower()) != self._graph_origin
            or not parts.path.startswith(urlsplit(self._graph).path + "/")
            or link in seen
        ):
            raise SourceError("unexpected @odata.nextLink from Microsoft Graph")
        return link

    # --- token -------------------------------------------------------------------------

    def _token(self) -> str:
        app = self._application()
        try:
            result = app.acquire_token_for_client(scopes=[self._scope])
        except Exception as error:  # requests' errors are OSErrors; msal raises ValueError too
            log.info("token request failed: %s", type(error).__name__)
            raise SourceError("cannot get a token from Microsoft Entra ID") from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if isinstance(token, str) and token:
            return token
        raise SourceError(_token_reason(result))

    def _application(self) -> Any:
        with self._lock:
            if self._app is None:
                try:  # reads {authority}/v2.0/.well-known/openid-configuration
                    self._app = msal.ConfidentialClientApplication(
                        self._client_id,
                        client_credential=self._secret,
                        authority=self._authority,
                        instance_discovery=False,
                        timeout=self._timeout,
                    )
                except OSError as error:
                    log.info("Entra ID sign-in endpoint unreachable: %s", type(error).__name__)
                    raise SourceError("cannot reach the Microsoft Entra ID sign-in endpoint") from None
                except Exception as error:  # ValueError: the tenant's OpenID configuration
                    log.info("Entra ID authority rejected: %s", type(error).__name__)
                    raise SourceError("Microsoft Entra ID does not know this tenant") from None
            return self._app

    def _drop_token(self) -> None:
        with self._lock:
            if self._app is not None:
                self._app.remove_tokens_for_client()


class _Call:
    """What one ``members`` call has used up: the single token refresh a 401 earns."""

    def __init__(self) -> None:
        self.token_refreshed = False


def _json(body: bytes) -> Mapping[str, Any]:
    try:
        page = json.loads(body)
    except ValueError:
        raise SourceError("unexpected response from Microsoft Graph") from None
    if not isinstance(page, dict) or not isinstance(page.get("value"), list):
        raise SourceError("unexpected response from Microsoft Graph")
    return page


def _users(page: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    users = page["value"]
    if not all(isinstance(user, dict) for user in users):
        raise SourceError("unexpected response from Microsoft Graph")
    return users


def _address(user: Mapping[str, Any]) -> str | None:
    """The member's address; None when disabled or without a usable one (see module doc)."""
    enabled, upn = user.get("accountEnabled"), user.get("userPrincipalName")
    if not isinstance(enabled, bool) or not isinstance(upn, str) or not upn:
        raise SourceError(f"Microsoft Graph returned users without their details: grant {PERMISSIONS}")
    if not enabled:
        return None
    for field in (user.get("mail"), upn):
        value = field.strip().lower() if isinstance(field, str) else ""
        if EMAIL.fullmatch(value) and "#ext#" not in value:
            return value
    return None


def _retry_after(value: str | None, retries: int) -> float:
    """Seconds to wait: Retry-After as delta-seconds or an HTTP date, else 1, 2, 4 s."""
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None and when.tzinfo is not None:
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return float(2**retries)


def _reason(status: int, retries: int) -> str:
    if status == 404:
        return "group not found"
    if status == 403:
        return f"HTTP 403 from Microsoft Graph: the app needs the {PERMISSIONS} application permissions"
    if status == 401:
        return "HTTP 401 from Microsoft Graph: a new token was rejected too"
    if status in RETRYABLE:
        return f"HTTP {status} from Microsoft Graph after {retries} retries"
    return f"HTTP {status} from Microsoft Graph"


def _token_reason(result: object) -> str:
    """The OAuth error and AADSTS code only ("token request failed: invalid_client
    (AADSTS7000215)"): ``error_description`` carries trace ids and is not needed to act."""
    error = result.get("error") if isinstance(result, dict) else None
    codes = result.get("error_codes") if isinstance(result, dict) else None
    reason = "token request failed"
    if isinstance(error, str) and ERROR_CODE.fullmatch(error):
        reason += f": {error}"
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        reason += f" (AADSTS{codes[0]})"
    return reason
