"""What a command hands back: lines on stdout and stderr, each through ``terminal_safe``
(documents control the text), a progress bar on stderr, and the exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DENIED = 0, 1, 2, 3
# A bug: an exception nobody turned into a message. 70 is sysexits' EX_SOFTWARE, apart from
# the codes scripts act on (1 a failure deptbot explained, 2 usage/configuration, 3 denied).
EXIT_INTERNAL = 70


def _printable(value: object) -> object:
    """Strip terminal control characters from stored values before printing them."""
    if isinstance(value, str):
        return "".join(ch if ch.isprintable() else "?" for ch in value)
    if isinstance(value, list):
        return [_printable(v) for v in value]
    return value


def _out(text: str = "") -> None:
    """Every line the CLI prints goes through ``terminal_safe`` (documents control the text)."""
    from bot.adapters.console import terminal_safe

    sys.stdout.write(terminal_safe(text) + "\n")


def _say(text: str) -> None:
    """A sentence for a person (chat notes), wrapped like answer text."""
    import textwrap

    from bot.adapters.console import PROSE_WIDTH, terminal_width

    _out(textwrap.fill(text, width=min(terminal_width(), PROSE_WIDTH), break_long_words=False))


def _err(text: str) -> None:
    from bot.adapters.console import terminal_safe

    sys.stderr.write(terminal_safe(text) + "\n")


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int, str], None]]:
    """A rich progress bar on stderr, drawn only once work is actually reported."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("files"))
    bar: Progress | None = None
    task = None

    def update(done: int, total: int, current: str) -> None:
        nonlocal bar, task
        if bar is None:
            bar = Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True))
            bar.start()
            task = bar.add_task(label, total=total)
        assert task is not None
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if bar is not None:
            bar.stop()
