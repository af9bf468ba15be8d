"""``KnowledgeBase``: one object that is both the ``Retriever`` and the ``Indexer`` port.

``bot/wiring.py`` builds one per process; the indexer and the reader share only the
state folder, so a refresh in another process (CLI, scheduler) is picked up by the
reader on its next query through the ``CURRENT`` pointer.

Every refresh — ``/kb refresh`` and the admin console (through ``Assistant.refresh``),
the knowledge watcher, the schedule (``bot.ops.runner``), ``deptbot index`` — comes
through ``refresh`` here, so this is where the no-overlap rule is kept: the department's
lease (``bot.ops.locks.RefreshGuard``, shared by processes using the state folder) is
tried once, and a refresh already running means ``RefreshBusy`` ("already refreshing")
instead of a second refresh queued behind the index's own lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Department
from bot.core.ports import AdminNotices, IndexReport, IndexStatus, ProgressFn
from bot.core.types import AccessScope, SourceChunk
from bot.errors import RefreshBusy
from bot.knowledge.embedders import DEFAULT_EMBEDDER, Embedder, get_embedder
from bot.knowledge.index import DEFAULT_ANN_THRESHOLD, DEFAULT_BUILD_MEMORY_MB, Indexer, VersionHook
from bot.knowledge.ingest import Limits
from bot.knowledge.retrieve import CANDIDATES, DEFAULT_FUSION, IndexReader, Probe

if TYPE_CHECKING:
    from bot.ops.locks import LeaseLocks


class KnowledgeBase:
    """Indexes departments under ``state_dir/indexes`` and answers access-filtered queries.

    ``embedder`` is the default profile name ("wordllama" | "minilm") or an ``Embedder``
    instance (tests pass counting fakes); a department's own ``embedder`` field wins
    over a default name. ``fusion`` is "minmax" (default) or "rrf". ``limits`` are the
    ``[knowledge]`` caps and link rule (``ingest.Limits``; defaults when None), and
    ``notices`` hears about files not indexed, refreshes that had to narrow and departments
    left out of auto-routed questions because their embedder cannot load.
    ``all_terms_first`` is ``[retrieval] all_terms_first`` (``lexical.all_terms_rank``).
    """

    def __init__(
        self,
        *,
        state_dir: Path,
        embedder: str | Embedder = DEFAULT_EMBEDDER,
        fusion: str = DEFAULT_FUSION,
        candidates: int = CANDIDATES,
        limits: Limits | None = None,
        notices: AdminNotices | None = None,
        build_memory_mb: float = DEFAULT_BUILD_MEMORY_MB,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        leases: Callable[[], LeaseLocks] | None = None,
        hook: VersionHook | None = None,
        all_terms_first: bool = True,
    ) -> None:
        """``build_memory_mb`` caps one build batch and ``ann_threshold`` is the live chunk
        count from which a department is searched through ANN indexes (``[knowledge]``).
        ``leases`` opens the refresh leases; default ``<state>/ops.sqlite3``, which is right
        while each replica builds its own index in its state folder. Once replicas share
        one index (PostgreSQL), pass ``bot.ops.locks.open_leases`` so refreshes of it never
        overlap across replicas. ``hook`` hears every version the indexer writes
        (``bot.knowledge.pg_sync.PgIndexHook`` publishes them to PostgreSQL)."""
        self.state_dir = Path(state_dir)
        self._instance = None if isinstance(embedder, str) else embedder
        self._default = embedder if isinstance(embedder, str) else embedder.name
        self.indexer = Indexer(
            state_dir=self.state_dir,
            embedder_for=self._embedder_for,
            limits=limits,
            notices=notices,
            build_memory_mb=build_memory_mb,
            ann_threshold=ann_threshold,
        )
        self.indexer.hook = hook
        from bot.ops.locks import RefreshGuard

        self.guard = RefreshGuard(self.state_dir, leases=leases)
        self.reader = IndexReader(
            state_dir=self.state_dir,
            embedder_named=self._embedder_named,
            fusion=fusion,
            candidates=candidates,
            ann_threshold=ann_threshold,
            all_terms_first=all_terms_first,
        )
        self.reader.outages.notices = notices  # departments whose embedder cannot load

    def _embedder_named(self, name: str) -> Embedder:
        if self._instance is not None and self._instance.name == name:
            return self._instance
        return get_embedder(name)

    def _embedder_for(self, department: Department) -> Embedder:
        if self._instance is not None:
            return self._instance
        return get_embedder(department.embedder or self._default)

    # Indexer port
    def refresh(self, department: Department, *, progress: ProgressFn | None = None) -> IndexReport:
        """Refresh under the department's lease; ``RefreshBusy`` while one runs anywhere."""
        with self.guard.hold(department.name) as free:
            if not free:
                raise RefreshBusy(
                    f"{department.title} is already refreshing (or running its evals); "
                    "try again when it has finished."
                )
            return self.indexer.refresh(department, progress=progress)

    def status(self, department: Department) -> IndexStatus:
        return self.indexer.status(department)

    @property
    def shared(self) -> bool:
        """True when versions are published to a store other replicas sync from."""
        return self.indexer.hook is not None

    def sync_published(self, departments: Iterable[str]) -> list[str]:
        """Switch to the versions other replicas published (PostgreSQL); the departments
        switched. Without a shared store there is nothing to sync: []."""
        poll = getattr(self.indexer.hook, "poll", None)
        return list(poll(departments)) if poll is not None else []

    # Retriever port
    def retrieve(self, query: str, scope: AccessScope, *, top_k: int = 8) -> list[SourceChunk]:
        return self.reader.retrieve(query, scope, top_k=top_k)

    def retrieve_many(
        self, query: str, scopes: Sequence[AccessScope], *, top_k: int = 8
    ) -> list[list[SourceChunk]]:
        return self.reader.retrieve_many(query, scopes, top_k=top_k)

    def probe_many(self, query: str, scopes: Sequence[AccessScope], *, top_k: int = 8) -> list[Probe]:
        """``retrieve_many`` with the chunks built on demand (routing; ``IndexReader.probe_many``)."""
        return self.reader.probe_many(query, scopes, top_k=top_k)

    def index_version(self, department: str) -> str | None:
        return self.reader.index_version(department)

    def audience_entries(self, department: str) -> frozenset[str]:
        return self.reader.audience_entries(department)

    def warm_up(self, department: str | None = None) -> None:
        """Load the embedder (and a department's index) now instead of on the first query."""
        if department is not None and self.reader.loaded(department) is not None:
            index = self.reader.loaded(department)
            assert index is not None
            self._embedder_named(index.embedder).embed(["warm up"])
        else:
            self._embedder_named(self._default).embed(["warm up"])
