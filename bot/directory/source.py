"""What every group source implements, and the one error it raises.

A source answers one question — who is in group ``ref`` right now — with lower-case
e-mail addresses, or raises ``SourceError``. It never returns a partial list: a page
that fails, a token that cannot be renewed, a group that no longer exists, a member
without an address it cannot resolve all raise, so the caller can fail closed (treat
the group as empty) instead of granting from a list it cannot vouch for.

Sources are blocking and are called from the directory sync's background thread, never
from the event loop or a request.
"""

from __future__ import annotations

from typing import Protocol


class SourceError(Exception):
    """A source could not be read; ``reason`` is short and safe to show an admin
    (no tokens, no response bodies): "HTTP 403 from Microsoft Graph", "group not found"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GroupSource(Protocol):
    kind: str  # "slack" | "entra" | "scim": the key used in groups.yaml

    def members(self, ref: str) -> frozenset[str]:
        """Lower-case e-mails of every member of group ``ref`` (as written in groups.yaml),
        complete or not at all (SourceError)."""
        ...
