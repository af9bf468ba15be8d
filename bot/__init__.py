"""deptbot: a department-aware assistant for Slack and Microsoft Teams."""

__version__ = "0.1.0"
