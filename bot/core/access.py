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

    def channel_audience(
        self, dept: Department, channel: str | None, audience: tuple[str, ...] | None
    ) -> tuple[str, ...]:
        """Who reads a channel: the adapter's list, else the department's
        ``channels.audience`` entry, else the department's ``ask`` list."""
        if audience is not None:
            return audience
        if channel is not None and channel in dept.channels.audience:
            return tuple(dept.channels.audience[channel])
        return tuple(dept.ask)

    def channel_admits(self, readers: tuple[str, ...], audiences: tuple[tuple[str, ...], ...]) -> bool:
        """True when *every* possible reader of the channel may see the document.

        Each reader entry must be covered by each audience level: "*" covers all; an
        e-mail or "*@domain" is covered by the same entry or its domain; a group is covered
        by itself or when every member is covered. Anything unknown is not covered, so the
        answer goes to the asker privately (fail closed).
        """
        return all(all(self._covers(level, entry) for entry in readers) for level in audiences)

    def _covers(self, level: tuple[str, ...], entry: str) -> bool:
        if "*" in level or entry in level:
            return True
        if entry == "*":
            return False
        if entry.startswith("group:"):
            members = self._members(entry[6:])
            return bool(members) and all(self._member_in(level, m) for m in members)
        if "@" in entry and not entry.startswith("*@"):
            return self._member_in(level, entry)
        return False  # "*@domain" is covered only by itself, its domain entry, or "*"

    def _member_in(self, level: tuple[str, ...], email: str) -> bool:
        groups = frozenset(g for g, members in self._company.groups.items() if email in members)
        return bool(Principal(email, groups).keys & set(level))

    def _members(self, group: str) -> frozenset[str]:
        return self._company.groups.get(group, frozenset())
