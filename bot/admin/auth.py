"""Who may open the admin console, and how: sign-in links, sessions and CSRF tokens.

No new identity provider: the chat platforms (and the CLI operator) already know who a
person is, so the bot hands an admin a short-lived, single-use link (``AdminLinks.issue``)
and the console swaps it for a session cookie. Only someone who administers at least one
department gets a link, by the same rule the bot uses for ``/kb refresh``
(``AccessPolicy.may_admin`` over the *live* configuration), and every console request asks
again (``administered``), so a configuration reload that drops an admin takes effect on
their next click.

The CSRF token is derived from the session id (HMAC), so it needs no storage, differs per
session and is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bot.config import Department
from bot.settings_schema import AdminSettings
from bot.store.admin_sessions import AdminSessionStore

if TYPE_CHECKING:
    from bot.core.pipeline import Assistant

log = logging.getLogger(__name__)

SIGNIN_PATH = "/admin/signin"
COOKIE = "deptbot_admin"
SECURE_COOKIE = "__Host-deptbot_admin"  # the __Host- prefix: Secure, Path=/, no Domain (browser-enforced)

NOT_ADMIN = "Only department admins can open the admin console."
CONSOLE_OFF = "The admin console is not enabled on this server."


def administered(assistant: Assistant, email: str | None) -> list[Department]:
    """The departments ``email`` administers now (live configuration), by name."""
    if not email:
        return []
    person = assistant.principal(email)
    if person is None:
        return []
    policy = assistant.policy
    return sorted((d for d in assistant.company if policy.may_admin(person, d).allowed), key=lambda d: d.name)


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower case (the form of an Origin header)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def csrf_token(session_id: str) -> str:
    """The session's CSRF token: a keyed hash of the session id (never stored)."""
    return hmac.new(session_id.encode(), b"deptbot-admin-csrf", hashlib.sha256).hexdigest()


def csrf_ok(session_id: str, given: str | None) -> bool:
    return csrf_equal(csrf_token(session_id), given or "")


def csrf_equal(expected: str, given: str) -> bool:
    """Constant-time comparison of two tokens (any text; empty never matches)."""
    return bool(expected) and bool(given) and hmac.compare_digest(expected.encode(), given.encode())


@dataclass(frozen=True)
class Issued:
    """A sign-in link, or why there is none (``url`` empty, ``reason`` a line for the person)."""

    url: str = ""
    reason: str = ""
    minutes: int = 0


class AdminLinks:
    """Makes sign-in links for admins; one per server (``register``) and one per CLI run."""

    def __init__(
        self,
        *,
        store: Callable[[], AdminSessionStore],
        config: AdminSettings,
        admin_of: Callable[[str], list[Department]],
    ) -> None:
        self._store = store  # a function: the server opens its store on first use
        self._config = config
        self._admin_of = admin_of

    @classmethod
    def for_assistant(
        cls, assistant: Assistant, store: Callable[[], AdminSessionStore], config: AdminSettings
    ) -> AdminLinks:
        """Links for whoever administers a department of ``assistant``'s live configuration."""
        return cls(store=store, config=config, admin_of=lambda email: administered(assistant, email))

    def issue(self, email: str | None, *, via: str) -> Issued:
        """A link for ``email`` when the console is on and they administer a department.
        ``via`` ("slack", "teams", "cli") goes to the console's audit trail."""
        if not self._config.enabled:
            return Issued(reason=CONSOLE_OFF)
        email = (email or "").strip().lower()
        depts = self._admin_of(email) if email else []
        if not depts:
            return Issued(reason=NOT_ADMIN)
        minutes = self._config.link_minutes
        store = self._store()
        token = store.create_link(email, minutes * 60.0)
        store.record("link", email, detail=via)
        log.info("admin console sign-in link issued via %s", via)
        base = self._config.public_url.rstrip("/")
        return Issued(url=f"{base}{SIGNIN_PATH}?token={token}", minutes=minutes)


def link_message(issued: Issued) -> str:
    """The words around a link (plain text; adapters escape or format the URL)."""
    return (
        f"Your admin console sign-in link works once, for {issued.minutes} minutes. "
        "Do not forward it: anyone who opens it is signed in as you."
    )


_links: weakref.WeakKeyDictionary[object, AdminLinks] = weakref.WeakKeyDictionary()


def register(assistant: object, links: AdminLinks) -> None:
    """Chat commands of this assistant issue links through ``links`` (set by ``build_app``)."""
    _links[assistant] = links


def links_for(assistant: object) -> AdminLinks | None:
    """The issuer registered for ``assistant``; None when no console is mounted."""
    return _links.get(assistant)
