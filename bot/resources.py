"""Where the files deptbot ships beside its code are: the Slack and Teams manifest templates
and the Teams icons.

Their one editable copy is the top-level ``manifest/`` folder. An installed wheel or sdist
build carries it as ``bot/_manifest`` (copied at build time by ``setup.py``), so the lookup
tries the packaged copy first and then ``manifest/`` beside ``bot/`` in a checkout (or an
editable install).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def manifest_dir(platform: str) -> Path:
    """``manifest/<platform>`` (``slack`` or ``teams``): the packaged copy, else the checkout's."""
    packaged = _PACKAGE / "_manifest" / platform
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / "manifest" / platform
