"""Who may ask, administer, run a template, and see which documents.

Access entries are strings: an e-mail, ``*@domain``, ``group:NAME`` or ``*``. A person
matches an entry when it is one of ``Principal.keys``; this one rule serves department
``ask``/``admins`` lists, template ``allowed`` lists and document audiences, so the check
before retrieval and the filter inside retrieval cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from bot.config import Company, Department
from bot.core.types import AccessScope, ChannelReaders, Decision, Principal, Signature

PrincipalOf = Callable[[str], Principal | None]


def matches(principal: Principal, entries: Iterable[str]) -> str | None:
    """The first entry the principal matches, or None."""
    keys = principal.keys
    for entry in entries:
        if entry in keys:
            return entry
    return None


CHANNEL_REASONS: Mapping[str, str] = {
    "restricted-sources": "this answer uses {dept} documents not everyone here can see",
    "member-not-allowed": "not everyone here may ask {dept}",
    "members-unknown": "I couldn't check who is in this conversation",
    "unavailable": "I couldn't check who is in this conversation",
    "external": "people from outside the organization are in this conversation",
    "too-large": "this conversation has too many members for me to check",
    "unresolved": "I couldn't identify everyone in this conversation",
    "public-undeclared": "anyone in the workspace can read this channel",
    "declared-audience": "this channel is declared readable by people who may not see {dept} answers",
    "stale": "the {dept} documents changed since this answer; please ask again",
}
"""Why an answer went to the asker privately: ``Decision.rule`` is ``"channel:" + key``."""


def _private(reason: str) -> Decision:
    return Decision(False, f"channel:{reason}", CHANNEL_REASONS[reason])


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

    def may_ask(self, principal: Principal, dept: Department, channel: str | None = None) -> Decision:
        """``ask`` decides, narrowed by the rollout: a department with ``enabled: false``
        takes no questions, and one with a ``pilot`` only from its pilot entries or from a
        pilot ``channel`` (where the question is asked)."""
        if not dept.enabled:
            return Decision(False, "disabled", admins=_admins_text(dept))
        entry = matches(principal, dept.ask)
        if entry is not None:
            if dept.pilot is None:
                return Decision(True, f"ask:{entry}")
            if channel is not None and channel in dept.pilot_channels:
                return Decision(True, f"pilot:channel:{entry}")
            member = matches(principal, dept.pilot_entries)
            if member is not None:
                return Decision(True, f"pilot:{member}")
            return Decision(False, "pilot:no-match", admins=_admins_text(dept))
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

    def may_run(
        self, principal: Principal, dept: Department, template: str, channel: str | None = None
    ) -> Decision:
        asked = self.may_ask(principal, dept, channel)
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

    def askable(self, principal: Principal, channel: str | None = None) -> list[Department]:
        return [d for d in self._company if self.may_ask(principal, d, channel).allowed]

    def runnable(self, principal: Principal) -> list[tuple[Department, str]]:
        return [
            (d, t)
            for d in self.askable(principal)
            for t in d.templates
            if self.may_run(principal, d, t).allowed
        ]

    def scope(self, principal: Principal, dept: Department) -> AccessScope:
        return AccessScope(department=dept.name, keys=principal.keys)

    def declared_audiences(self, channel: str | None) -> list[tuple[str, ...]]:
        """Every ``channels.audience`` declaration of ``channel``, from any department.

        Declarations only narrow: each one must pass on its own (``channel_verdict``).
        """
        return [tuple(d.channels.audience[channel]) for d in self._company if channel in d.channels.audience]

    def channel_verdict(
        self,
        dept: Department,
        channel: str | None,
        readers: ChannelReaders | None,
        signatures: Sequence[Signature],
        *,
        principal_of: PrincipalOf,
    ) -> Decision:
        """May an answer from ``dept`` built on sources with these audience ``signatures``
        be shown to everyone who can read ``channel``?

        Yes only when the actual readers are known and *every* one of them may ask the
        department and may see every source; a declared channel audience can only narrow
        this (each declaration must itself be covered), and it is what stands for the
        non-members who can read a public channel. Anything unknown is a no (fail closed);
        the rule names why, so the asker is told in one line.
        """
        if readers is None:
            return _private("members-unknown")
        if readers.unknown:
            return _private(readers.unknown if readers.unknown in CHANNEL_REASONS else "unavailable")
        if not readers.emails:
            return _private("members-unknown")
        levels = [tuple(sig) for sig in signatures]
        for email in sorted(readers.emails):
            person = principal_of(email)
            if person is None:
                return _private("unresolved")
            if not self.may_ask(person, dept, channel).allowed:  # the pilot counts too
                return _private("member-not-allowed")
            scope = AccessScope(department=dept.name, keys=person.keys)
            if not all(scope.admits(sig) for sig in levels):
                return _private("restricted-sources")
        declarations = self.declared_audiences(channel)
        if readers.public and readers.stand_in:
            declarations.append(readers.stand_in)
        if readers.public and not declarations:
            return _private("public-undeclared")
        for audience in declarations:
            if not self.channel_admits(audience, (tuple(dept.ask),)):
                return _private("declared-audience")
            if (
                dept.pilot is not None
                and channel not in dept.pilot_channels
                and not self.channel_admits(audience, (tuple(dept.pilot_entries),))
            ):
                return _private("declared-audience")
            if not all(self.channel_admits(audience, sig) for sig in levels):
                return _private("restricted-sources")
        return Decision(True, "channel:members-allowed")

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
