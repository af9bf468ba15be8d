"""Platform-neutral core: types, ports, access control, routing and the pipeline.

Nothing under ``bot/core`` imports Slack, botbuilder, LlamaIndex, LLM SDKs or SQLite;
``tests/core/test_boundaries.py`` enforces it.
"""
