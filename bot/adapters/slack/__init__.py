"""Slack adapter: ``translate`` (events → Message), ``blocks`` (Answer → Block Kit), ``app`` (bolt wiring)."""
