"""``python -m bot`` is the same as the ``deptbot`` console script."""

from bot.cli import main

raise SystemExit(main())
