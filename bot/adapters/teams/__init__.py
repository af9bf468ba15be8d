"""Microsoft Teams adapter (botbuilder 4.17). Everything Teams-specific lives in this package.

- ``translate``: pure activity JSON ⇄ ``Message``/``Answer`` (no botbuilder import);
- ``turns``: one turn's logic over the ``Assistant``;
- ``bot``: ``mount(app, assistant=, settings=)`` for the shared aiohttp server;
- ``auth``: settings from the environment, ``check_teams_settings(settings, host)``;
- ``manifest`` / ``icons``: the app package (``build_manifest_zip``).
"""
