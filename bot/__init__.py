"""deptbot: a department-aware assistant for Slack and Microsoft Teams."""

__version__ = "0.1.0"  # the one place it is written: pyproject.toml reads it (dynamic version)


def package_version() -> str:
    """The installed distribution's version (what ``pip`` installed), else ``__version__``
    (a checkout run without installing)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deptbot")
    except PackageNotFoundError:
        return __version__
