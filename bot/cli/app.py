"""``main``: parse, load settings, run the command, and turn every error into a message
and an exit code (never a traceback); ``-v``/``-vv`` logging is set up here."""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Sequence

from bot.cli.check import cmd_check
from bot.cli.output import EXIT_DENIED, EXIT_ERROR, EXIT_INTERNAL, EXIT_USAGE, _err
from bot.cli.parser import build_parser
from bot.errors import AccessDenied, ConfigError, DeptbotError, UsageError
from bot.settings import Settings

log = logging.getLogger(__name__)

# The path exists where a folder should be, or the reverse, or it cannot be reached or
# written: the admin's path (``--state``, ``--settings``, ``--out`` …) is wrong, exit 2.
_PATH_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.EEXIST,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.ELOOP,
    }
)


class _SafeFormatter(logging.Formatter):
    """Log lines pass through ``terminal_safe`` like everything else the CLI prints."""

    def format(self, record: logging.LogRecord) -> str:
        from bot.adapters.console import terminal_safe

        return terminal_safe(super().format(record))


def _configure_logging(verbosity: int) -> None:
    """Warnings only by default; ``-v``: deptbot's own INFO logs (the ``bot`` loggers);
    ``-vv``: deptbot's DEBUG and other libraries' INFO. Levels are touched only when asked
    for, so a host that already configured logging (pytest) keeps its own — except that
    libraries which log message bodies stay at WARNING and exception messages are never
    logged, at any level (``bot.logs``)."""
    from bot.logs import install

    install()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_SafeFormatter(TEXT_FORMAT))
    handler.set_name(HANDLER_NAME)
    logging.basicConfig(level=logging.WARNING, handlers=[handler])  # no-op if already configured
    if verbosity > 1:
        logging.getLogger().setLevel(logging.INFO)
    if verbosity:
        logging.getLogger("bot").setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)


TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"
HANDLER_NAME = "deptbot"


def _use_log_format(fmt: str) -> None:
    """``logging.format`` / ``serve --log-format``: swap the formatter of the handler set up
    above (a host's own handlers, e.g. pytest's, are left alone)."""
    from bot.logs import JsonFormatter

    for handler in logging.getLogger().handlers:
        if handler.get_name() == HANDLER_NAME:
            handler.setFormatter(JsonFormatter() if fmt == "json" else _SafeFormatter(TEXT_FORMAT))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    from bot.store.state import PRIVATE_UMASK

    os.umask(PRIVATE_UMASK)  # indexes, databases and caches hold restricted text: 0600/0700
    try:
        settings = Settings.load(
            departments=args.departments, state=args.state, settings_file=args.settings, collect=True
        )
        _use_log_format(getattr(args, "log_format", None) or settings.values.logging.format)
        if settings.problems and args.func is not cmd_check:  # check lists them with the rest
            for problem in settings.problems:
                _err(f"configuration error: {problem.user_message}")
            return EXIT_USAGE
        result: int = args.func(args, settings)
        return result
    except ConfigError as exc:
        _err(f"configuration error: {exc.user_message}")
        return EXIT_USAGE
    except UsageError as exc:
        _err(exc.user_message)
        return EXIT_USAGE
    except AccessDenied as exc:
        _err(exc.user_message)
        return EXIT_DENIED
    except DeptbotError as exc:
        _err(exc.user_message)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``deptbot ask … | head -1``): exit quietly, as cat does.
        # stdout is pointed at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:
        serving = getattr(args, "command", "") == "serve"  # a running server's, not a path typo
        log.log(logging.ERROR if serving else logging.DEBUG, "command failed on a system call", exc_info=True)
        _err(_system_problem(exc))
        path_error = exc.filename is not None and exc.errno in _PATH_ERRNOS
        return EXIT_USAGE if path_error and not serving else EXIT_ERROR
    except Exception as exc:
        # A bug. The exception's text may quote a question or a document, so the person
        # sees its type at most in the logs: -vv logs the frames (``bot.logs`` withholds
        # every exception message, at any level).
        # A server's crash may not happen twice, so ``serve`` logs the frames at ERROR (the
        # operator's log, types and frames only); other commands at debug (``-vv``).
        level = logging.ERROR if getattr(args, "command", "") == "serve" else logging.DEBUG
        log.log(level, "unexpected %s", type(exc).__name__, exc_info=True)
        _err("deptbot: unexpected error; run the command again with -vv for the details")
        return EXIT_INTERNAL


def _system_problem(exc: OSError) -> str:
    """One line for a failed system call: the path the admin gave and the operating
    system's own words for the errno (a fixed table, never text from a request)."""
    reason = os.strerror(exc.errno) if exc.errno else "system error"
    if exc.filename is None:
        return f"deptbot: {reason}"
    path = os.fsdecode(exc.filename) if isinstance(exc.filename, bytes) else str(exc.filename)
    hint = {
        errno.EEXIST: " (something else is already there)",
        errno.ENOTDIR: " (part of the path is a file, not a folder)",
        errno.EISDIR: " (a folder, where a file was expected)",
        errno.ENOENT: " (check the path; its folder must exist)",
    }.get(exc.errno or 0, "")
    return f"cannot use {path}: {reason}{hint}"
