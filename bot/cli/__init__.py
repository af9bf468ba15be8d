"""``deptbot`` commands: parse, call the library, print. Nothing else lives here.

``app`` has ``main`` (settings, errors → exit codes), ``parser`` every command's arguments,
``output`` what is printed and the exit codes; then one module per group of commands:
``check``, ``answers`` (ask, run, templates), ``chat``, ``directory`` (who), ``index``
(index, eval), ``records`` (audit, usage) and ``serve`` (serve, manifest). Heavy imports
stay inside the commands, so ``deptbot --help`` and ``deptbot ask`` start quickly.

Exit codes: 0 answered (including "I don't know"), 2 usage or configuration error,
3 access denied, 1 anything unexpected (with a request id, never a traceback).
"""

from bot.cli.app import main
from bot.cli.output import EXIT_DENIED, EXIT_ERROR, EXIT_OK, EXIT_USAGE
from bot.cli.parser import build_parser

__all__ = ["EXIT_DENIED", "EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]
