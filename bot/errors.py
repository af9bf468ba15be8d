"""One exception tree for deptbot.

Callers catch the branch they can handle; adapters catch ``DeptbotError`` at the edge
and show ``user_message`` (never ``str(exc)`` of a foreign exception).

    DeptbotError                     base; ``user_message`` is safe to show a person
    ├── ConfigError                  departments/*.yaml, groups.yaml, settings file
    │                                (file, line, field, problem)
    ├── UsageError                   bad CLI/chat input: empty or too-long question,
    │                                unknown department or template
    ├── AccessDenied                 carries the core Decision that denied the request
    ├── KnowledgeError               indexing or reading an index failed
    │   ├── IndexMissing             a department has no usable index yet
    │   └── RefreshBusy              the department is already refreshing (or evaluating)
    ├── ProviderError                an LLM or embedding provider failed
    │   ├── ProviderUnavailable      not configured, circuit open, timeout, 5xx
    │   └── BudgetExceeded           a daily budget would be overspent
    └── StoreError                   audit/usage database problems
"""

from __future__ import annotations

from pathlib import Path


class DeptbotError(Exception):
    """Base of every error deptbot raises on purpose."""

    user_message: str = "Something went wrong."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.user_message)
        if message:
            self.user_message = message


class ConfigError(DeptbotError):
    """A configuration file is malformed; the message names file, line and field."""

    def __init__(
        self,
        problem: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.problem = problem
        where = self.file or "configuration"
        if line is not None:
            where += f":{line}"
        if field:
            where += f": {field}"
        super().__init__(f"{where}: {problem}")


class UsageError(DeptbotError):
    """The request itself is unusable (empty, too long, unknown name)."""


class AccessDenied(DeptbotError):
    """Raised where an exception is more natural than a Decision (CLI exit code 3)."""


class KnowledgeError(DeptbotError):
    """Indexing or reading a department's knowledge failed."""


class IndexMissing(KnowledgeError):
    """The department has no index yet; run ``deptbot index``."""


class RefreshBusy(KnowledgeError):
    """A refresh (or the evals after one) of this department is already running, in this
    process or another; a second one is refused rather than run again right after it."""


class ProviderError(DeptbotError):
    """An LLM or embedding provider failed."""


class ProviderUnavailable(ProviderError):
    """The provider is not configured, its circuit is open, or it timed out."""


class BudgetExceeded(ProviderError):
    """A daily token or currency budget would be exceeded."""


class StoreError(DeptbotError):
    """The audit or usage store failed."""
