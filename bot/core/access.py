"""Who may ask, administer, run a template, and see which documents.

Access entries are strings: an e-mail, ``*@domain``, ``group:NAME`` or ``*``. A person
matches an entry when it is one of ``Principal.keys``; this one rule serves department
``ask``/``admins`` lists, template ``allowed`` lists and document audiences, so the check
before retrieval and the filter inside retrieval cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bot.config import Company, Department
from bot.core.types import AccessScope, Decision, Principal


def matches(principal: Principal, entries: Iterable[str]) -> str | None:
    """The first entry the principal matches, or None."""
    keys = principal.keys
    for entry in entries:
        if entry in keys:
            return entry
    return None


def _admins_text(dept: Department) -> tuple[str, ...]:
    return tuple(dept.admins)


class GroupDirectory:
    """The Directory port backed by ``groups.yaml``."""

    def __init__(self, *, groups: Mapping[str, frozenset[str]]) -> None:
        self._groups_by_email: dict[str, set[str]] = {}
        for group, members in groups.items():
            for email in members:
                self._groups_by_email.setdefault(email, set()).add(group)

    def principal(self, email: str) -> Principal | None:
        email = email.strip().lower()
        local, _, domain = email.partition("@")
        if not local or not domain or "." not in domain or " " in email:
            return None
        return Principal(email=email, groups=frozenset(self._groups_by_email.get(email, ())))

    def members(self, group: str) -> frozenset[str]:
        return frozenset(e for e, gs in self._groups_by_email.items() if group in gs)


class AccessPolicy:
    """Decisions for one company configuration; pure and cheap to call per request."""

    def __init__(self, *, company: Company) -> None:
        self._company = company

    def may_ask(self, principal: Principal, dept: Department) -> Decision:
        entry = matches(principal, dept.ask)
        if entry is not None:
            return Decision(True, f"ask:{entry}")
        wanted = ", ".join(dept.ask) if dept.ask else "nobody (no ask entries)"
        return Decision(
            False,
            "ask:no-match",
            f"You can't ask {dept.title}: it answers {wanted}.",
            admins=_admins_text(dept),
        )

    def may_admin(self, principal: Principal, dept: Department) -> Decision:
        entry = matches(principal, dept.admins)
        if entry is not None:
            return Decision(True, f"admin:{entry}")
        return Decision(
            False,
            "admin:no-match",
            f"Only {dept.title} admins can do that.",
            admins=_admins_text(dept),
        )

    def may_run(self, principal: Principal, dept: Department, template: str) -> Decision:
        asked = self.may_ask(principal, dept)
        if not asked.allowed:
            return asked
        tpl = dept.templates[template]
        entry = matches(principal, tpl.allowed)
        if entry is not None:
            return Decision(True, f"template:{template}:{entry}")
        return Decision(
            False,
            f"template:{template}:no-match",
            f"You can't run {template}: it is for {', '.join(tpl.allowed)}.",
            admins=_admins_text(dept),
        )

    def askable(self, principal: Principal) -> list[Department]:
        return [d for d in self._company if self.may_ask(principal, d).allowed]

    def runnable(self, principal: Principal) -> list[tuple[Department, str]]:
        return [
            (d, t)
            for d in self.askable(principal)
            for t in d.templates
            if self.may_run(principal, d, t).allowed
        ]

    def scope(self, principal: Principal, dept: Department) -> AccessScope:
        return AccessScope(department=dept.name, keys=principal.keys)

    def channel_keys(
        self, dept: Department, channel: str | None, audience: tuple[str, ...] | None
    ) -> frozenset[str]:
        """Access keys that *everyone* in a channel is guaranteed to hold.

        A channel's readers are described by an audience list (from the adapter or the
        department's ``channels.audience``; default: the department's ``ask`` list). The
        only keys all of them share are the entries of that list that are broad enough
        to cover each reader: we keep the list itself plus "*". A document is safe for
        the channel when each of its audiences contains one of these entries or "*".
        """
        entries = audience
        if entries is None and channel is not None:
            configured = dept.channels.audience.get(channel)
            entries = tuple(configured) if configured is not None else None
        if entries is None:
            entries = tuple(dept.ask)
        return frozenset({"*", *entries})
