"""Slack user groups as a group source: ``slack: "@hr-team"`` (or the id ``S0123ABC``).

Per ``members(ref)``:

1. The workspace's groups come from ``usergroups.list`` with ``include_disabled`` (scope
   ``usergroups:read``), cached for ``groups_ttl`` seconds and re-read once when a handle
   or id is not in the cached copy. A group whose ``date_delete`` is set has been disabled
   in Slack: that is a ``SourceError`` ("user group disabled"), never its last members.
   A handle shared by a disabled and a live group means the live one.
2. ``usergroups.users.list`` for the id, *without* ``include_disabled``: a group disabled
   since the listing was cached yields nothing rather than its old members.
3. Each member id → ``users.info`` (scope ``users:read.email``), cached for ``email_ttl``
   seconds (a profile without an e-mail for ``miss_ttl``). Deactivated accounts
   (``deleted``), bots and workflow bots, Slackbot and Slack Connect strangers are not
   members. A member whose profile has no e-mail is skipped (the group only gets narrower);
   when *no* member has one the scope is missing, and that is a ``SourceError`` so an admin
   hears of it instead of finding an empty group.

Any Web API error (``users.info`` included: never a partial list), a network error, or an
answer of the wrong shape is a ``SourceError`` whose reason names the method and Slack's
error code — never the token or a response body. The synchronous ``WebClient`` retries
connection errors and HTTP 429s (sleeping for ``Retry-After``, at most ``max_retry_after``
seconds, a bounded number of times); blocking is fine on the sync's background thread.
"""

from __future__ import annotations

import http.client
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.slack_response import SlackResponse

from bot.directory.source import SourceError

log = logging.getLogger(__name__)

GROUP_ID = re.compile(r"S[A-Z0-9]{2,}")  # user group ("subteam") ids start with S; handles are lower-case
ERROR_CODE = re.compile(r"[a-z0-9_.]{1,60}")  # what Slack puts in "error"; anything else is not echoed
SCOPES = re.compile(r"[a-z0-9_.:,]{1,100}")  # "needed" on missing_scope


@dataclass(frozen=True)
class _Group:
    id: str
    handle: str
    disabled: bool


@dataclass(frozen=True)
class _Person:
    email: str | None  # lower-case; None: the profile shows no e-mail
    member: bool  # False: deactivated, a bot, Slackbot or a Slack Connect stranger


class _BoundedRateLimitRetry(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (sleeps ``Retry-After``), but a longer wait than ``max_wait``
    is not waited out: the call fails as ``ratelimited`` and the read is retried next refresh."""

    def __init__(self, *, max_retry_count: int, max_wait: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        values = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
        if values is None:
            return True  # the SDK waits 1-2 s
        raw = values[0] if isinstance(values, list) and values else values
        try:
            return 0 <= int(str(raw).strip()) <= self.max_wait
        except ValueError:
            return False  # the SDK could not parse it either


class SlackGroupSource:
    """Members of Slack user groups as lower-case e-mails (a ``GroupSource``)."""

    kind = "slack"

    def __init__(
        self,
        *,
        token: str,
        api_url: str = "https://slack.com/api/",
        timeout: float = 10.0,
        client: WebClient | None = None,
        groups_ttl: float = 60.0,
        email_ttl: float = 600.0,
        miss_ttl: float = 60.0,
        max_retries: int = 3,
        max_retry_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``client``: a ready ``WebClient`` used as is (its own URL, token and retries)."""
        self._client = client or WebClient(
            token=token,
            base_url=api_url.rstrip("/") + "/",
            timeout=timeout,  # type: ignore[arg-type]  # annotated int; urllib takes a float
            retry_handlers=[
                ConnectionErrorRetryHandler(max_retry_count=2),
                _BoundedRateLimitRetry(max_retry_count=max_retries, max_wait=max_retry_after),
            ],
        )
        self._groups_ttl = groups_ttl
        self._email_ttl = email_ttl
        self._miss_ttl = miss_ttl
        self._clock = clock
        self._lock = threading.Lock()  # one read at a time: shared caches, and gentler on rate limits
        self._groups: dict[str, _Group] = {}  # by id
        self._handles: dict[str, str] = {}  # handle → id
        self._listed_at: float | None = None
        self._people: dict[str, tuple[float, _Person]] = {}  # user id → (expires, person)

    def members(self, ref: str) -> frozenset[str]:
        with self._lock:
            group = self._group(ref)
            if group.disabled:
                raise SourceError("user group disabled")
            resp = self._call(
                "usergroups.users.list", lambda: self._client.usergroups_users_list(usergroup=group.id)
            )
            ids = resp.get("users")
            if not isinstance(ids, list) or not all(isinstance(u, str) for u in ids):
                raise SourceError("unexpected answer from Slack usergroups.users.list")
            emails: set[str] = set()
            missing = 0
            for user_id in dict.fromkeys(ids):
                person = self._person(user_id)
                if not person.member:
                    continue
                if person.email is None:
                    missing += 1
                else:
                    emails.add(person.email)
            if missing and not emails:
                raise SourceError("no member e-mail readable (is users:read.email granted?)")
            if missing:
                log.warning("Slack user group %s: %d member(s) without an e-mail skipped", ref, missing)
            return frozenset(emails)

    # ── groups ───────────────────────────────────────────────────────────────────────

    def _group(self, ref: str) -> _Group:
        raw = ref.strip()
        group_id = raw if GROUP_ID.fullmatch(raw) else None
        handle = raw.removeprefix("@").lower()  # an all-caps "SALES" is tried as an id, then as a handle
        if not handle:
            raise SourceError("empty user group reference")
        listed_now = False
        if self._listed_at is None or self._clock() - self._listed_at >= self._groups_ttl:
            self._list_groups()
            listed_now = True
        found = self._find(group_id, handle)
        if found is None and not listed_now:  # created or renamed since the cached listing
            self._list_groups()
            found = self._find(group_id, handle)
        if found is None:
            raise SourceError(f"user group {group_id or '@' + handle} not found")
        return found

    def _find(self, group_id: str | None, handle: str) -> _Group | None:
        found = self._groups.get(group_id) if group_id else None
        by_handle = self._handles.get(handle)
        return found or (self._groups.get(by_handle) if by_handle else None)

    def _list_groups(self) -> None:
        resp = self._call("usergroups.list", lambda: self._client.usergroups_list(include_disabled=True))
        listed = resp.get("usergroups")
        if not isinstance(listed, list):
            raise SourceError("unexpected answer from Slack usergroups.list")
        groups: dict[str, _Group] = {}
        handles: dict[str, str] = {}
        for item in listed:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            deleted = item.get("date_delete")
            handle = str(item.get("handle") or "").lower()
            group = _Group(item["id"], handle, isinstance(deleted, int | float) and deleted > 0)
            groups[group.id] = group
            if handle and (handle not in handles or groups[handles[handle]].disabled):
                handles[handle] = group.id
        self._groups, self._handles, self._listed_at = groups, handles, self._clock()

    # ── people ───────────────────────────────────────────────────────────────────────

    def _person(self, user_id: str) -> _Person:
        now = self._clock()
        hit = self._people.get(user_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        resp = self._call("users.info", lambda: self._client.users_info(user=user_id))
        user = resp.get("user")
        if not isinstance(user, dict):
            raise SourceError("unexpected answer from Slack users.info")
        profile = user.get("profile")
        raw = profile.get("email") if isinstance(profile, dict) else None
        email = raw.strip().lower() if isinstance(raw, str) and "@" in raw else None
        member = not (
            user.get("deleted") is True
            or user.get("is_bot") is True
            or user.get("is_workflow_bot") is True
            or user.get("is_stranger") is True
            or user_id == "USLACKBOT"
        )
        person = _Person(email, member)
        ttl = self._email_ttl if email or not member else self._miss_ttl
        self._people[user_id] = (now + ttl, person)
        return person

    # ── calls ────────────────────────────────────────────────────────────────────────

    def _call(self, method: str, call: Callable[[], SlackResponse]) -> SlackResponse:
        try:
            return call()
        except SlackApiError as exc:
            raise SourceError(_api_reason(method, exc.response)) from None
        except SlackClientError:
            raise SourceError(f"Slack client error ({method})") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError, timeouts, bad JSON
            raise SourceError(f"cannot reach Slack ({method}): {type(exc).__name__}") from None


def _api_reason(method: str, resp: Any) -> str:
    """A short reason from Slack's error code; the body itself is never echoed."""
    data = resp.data if isinstance(getattr(resp, "data", None), dict) else {}
    status = getattr(resp, "status_code", 0)
    code = data.get("error")
    if status == 429 or code == "ratelimited":
        return f"rate limited by Slack ({method})"
    if code == "no_such_subteam":
        return "user group not found"
    if isinstance(code, str) and ERROR_CODE.fullmatch(code):
        needed = data.get("needed")
        if code == "missing_scope" and isinstance(needed, str) and SCOPES.fullmatch(needed):
            return f"Slack {method}: missing_scope {needed}"
        return f"Slack {method}: {code}"
    return f"HTTP {status} from Slack ({method})"
