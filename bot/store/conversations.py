"""Small state that chat adapters keep between turns: three bounded maps.

Each is safe to share between asyncio tasks and worker threads:

- ``History``: the last few turns per conversation (answers with their label), so
  follow-ups carry context;
- ``ReplyIndex``: the platform id of a posted answer → its request id (feedback arrives
  with the message id, the audit log wants the request id), plus optional payload;
- ``References``: opaque conversation references (JSON-able dicts) per person, for
  proactive 1:1 messages.

The classes here keep them in memory (tests, the console); ``bot.store.teams_state`` keeps
the same three in SQLite in the state folder, so a restarted Teams bot still has its
follow-up history (labels included), feedback mapping and 1:1 references
(``ConversationStore.in_state_dir``). The ``*Store`` protocols are what adapters rely on.
Bounds keep a busy server from growing without limit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from bot.core.labels import answer_turns
from bot.core.types import Answer, Classification, Turn

if TYPE_CHECKING:
    from bot.governance.vault import Vault
    from bot.store.teams_state import TeamsStore

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class HistoryStore(Protocol):
    def get(self, key: Hashable) -> tuple[Turn, ...]: ...
    def add(self, key: Hashable, question: str, answer: str, label: Classification | None = None) -> None: ...
    def add_answer(self, key: Hashable, question: str, answer: Answer) -> None: ...
    def extend(self, key: Hashable, new: Iterable[Turn]) -> None: ...


class ReplyStore(Protocol):
    def remember(self, message_id: str, request_id: str, payload: Any = None) -> None: ...
    def request_id(self, message_id: str | None) -> str | None: ...
    def payload(self, message_id: str | None) -> Any: ...


class ReferenceStore(Protocol):
    def put(self, key: Hashable, reference: dict[str, Any]) -> None: ...
    def get(self, key: Hashable) -> dict[str, Any] | None: ...


class BoundedMap(Generic[K, V]):
    """A thread-safe LRU map that forgets the least recently used key past ``limit``."""

    def __init__(self, *, limit: int) -> None:
        self._data: OrderedDict[K, V] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._limit:
                self._data.popitem(last=False)

    def pop(self, key: K) -> V | None:
        with self._lock:
            return self._data.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)


class History:
    """Last ``turns`` turns per conversation key, for at most ``conversations`` keys."""

    def __init__(self, *, turns: int = 6, conversations: int = 5000) -> None:
        self._turns = turns
        self._map: BoundedMap[Hashable, deque[Turn]] = BoundedMap(limit=conversations)

    def get(self, key: Hashable) -> tuple[Turn, ...]:
        found = self._map.get(key)
        return tuple(found) if found else ()

    def add(self, key: Hashable, question: str, answer: str, label: Classification | None = None) -> None:
        """``label``: the answer's classification, so a follow-up carrying it is labelled too."""
        self.extend(key, (Turn(role="user", text=question), Turn(role="assistant", text=answer, label=label)))

    def add_answer(self, key: Hashable, question: str, answer: Answer) -> None:
        """Record an exchange with the core's ``answer_turns``: the answer's label travels with it."""
        self.extend(key, answer_turns(question, answer))

    def extend(self, key: Hashable, new: Iterable[Turn]) -> None:
        """Append turns as given (an assistant turn without a label counts as restricted)."""
        found = self._map.get(key)
        turns = found if found is not None else deque(maxlen=self._turns)
        turns.extend(new)
        self._map.put(key, turns)


class ReplyIndex:
    """Posted message id → request id (and an optional payload, e.g. the card sent)."""

    def __init__(self, *, limit: int = 10000) -> None:
        self._map: BoundedMap[str, tuple[str, Any]] = BoundedMap(limit=limit)

    def remember(self, message_id: str, request_id: str, payload: Any = None) -> None:
        if message_id:
            self._map.put(message_id, (request_id, payload))

    def request_id(self, message_id: str | None) -> str | None:
        found = self._map.get(message_id) if message_id else None
        return found[0] if found else None

    def payload(self, message_id: str | None) -> Any:
        found = self._map.get(message_id) if message_id else None
        return found[1] if found else None


class References:
    """Conversation references (plain dicts) keyed by who they reach."""

    def __init__(self, *, limit: int = 20000) -> None:
        self._map: BoundedMap[Hashable, dict[str, Any]] = BoundedMap(limit=limit)

    def put(self, key: Hashable, reference: dict[str, Any]) -> None:
        self._map.put(key, dict(reference))

    def get(self, key: Hashable) -> dict[str, Any] | None:
        found = self._map.get(key)
        return dict(found) if found is not None else None


class ConversationStore:
    """The three maps together, as one object an adapter holds (in memory unless given)."""

    def __init__(
        self,
        *,
        history_turns: int = 6,
        history: HistoryStore | None = None,
        replies: ReplyStore | None = None,
        references: ReferenceStore | None = None,
        close: Callable[[], None] | None = None,
        state: TeamsStore | None = None,
    ) -> None:
        self.history: HistoryStore = history if history is not None else History(turns=history_turns)
        self.replies: ReplyStore = replies if replies is not None else ReplyIndex()
        self.references: ReferenceStore = references if references is not None else References()
        self._close = close
        self.state = state  # the SQLite or PostgreSQL store behind the maps, when persistent

    @classmethod
    def in_state_dir(
        cls, state_dir: Path, *, history_turns: int = 6, vault: Vault | None = None
    ) -> ConversationStore:
        """The three maps in SQLite under ``state_dir``, so they survive a restart; text is
        sealed by ``vault`` (default: the vault of ``state_dir``, ``bot.governance.vault``)."""
        from bot.store.teams_state import TeamsState

        state = TeamsState.in_state_dir(Path(state_dir), history_turns=history_turns, vault=vault)
        return cls.over(state)

    @classmethod
    def for_settings(cls, settings: Any) -> ConversationStore:
        """The three maps where ``settings`` keep shared state: PostgreSQL with
        ``DEPTBOT_DATABASE_URL`` (every replica sees the same), else the state folder."""
        from bot.store.teams_state import open_teams_state

        state = open_teams_state(settings)
        assert state is not None  # only_existing is False: it is created
        return cls.over(state)

    @classmethod
    def over(cls, state: TeamsStore) -> ConversationStore:
        return cls(
            history=state.history,
            replies=state.replies,
            references=state.references,
            close=state.close,
            state=state,
        )

    def link_person(self, user_id: str, email: str | None) -> None:
        """Record that this chat user is ``email`` (as a hash), so a privacy erase finds
        every row of theirs directly; nothing for the in-memory maps (they die with the
        process)."""
        if self.state is not None:
            self.state.people.link(user_id, email)

    def purge_older_than(self, kind: str, cutoff: datetime, *, batch: int = 500) -> int:
        """Retention: delete "history", "replies" or "references" rows last written before
        ``cutoff`` (``TeamsState.purge_older_than``). In-memory maps keep no times: they
        are bounded and die with the process, so nothing is purged from them (0)."""
        from bot.store.teams_state import PURGE_KINDS

        if kind not in PURGE_KINDS:
            raise ValueError(f"conversation state has no {kind!r} records (one of {', '.join(PURGE_KINDS)})")
        return self.state.purge_older_than(kind, cutoff, batch=batch) if self.state is not None else 0

    def close(self) -> None:
        if self._close is not None:
            self._close()
