"""Microsoft Teams adapter (botbuilder 4.17). Everything Teams-specific lives in this package.

- ``inbound``: pure activity JSON → ``Message`` and commands (no botbuilder import);
- ``render``: pure ``Answer`` → activity JSON and Adaptive Cards, escaping (no botbuilder import);
- ``turns``: one turn's logic over the ``Assistant`` (questions, answers, feedback, welcome);
- ``commands``: help, status and refresh in chat;
- ``private``: 1:1 delivery of restricted answers and denials (proactive messages);
- ``roster``: who reads a channel or group chat (``Message.channel_readers``), cached;
- ``outbound``: ``render``'s dicts → botbuilder activities, posting and updating text;
- ``bot``: ``mount(app, assistant=, settings=)`` for the shared aiohttp server;
- ``auth``: settings from the environment, ``check_teams_settings(settings, host)``;
- ``manifest`` / ``icons``: the app package (``build_manifest_zip``);
- ``pages``: the help, privacy and terms pages the app package links to.
"""
