"""Governance: the audit chain, keys and encryption at rest, privacy export/erase, retention.

Each module owns one concern; stores call them, the CLI and chat adapters expose them.
"""
