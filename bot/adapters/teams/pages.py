"""The three pages a Teams app package links to: support (``/about``), privacy and terms of use.

The app manifest requires ``developer.websiteUrl``, ``privacyUrl`` and ``termsOfUseUrl``
(https URLs; Teams shows them on the app's About tab), so the server that answers
``/api/messages`` also serves short default pages at those paths. They describe what deptbot
itself does with data; an organisation that has its own statements points the manifest at
them instead (``build_manifest_zip(website_url=, privacy_url=, terms_url=)``).

Static text only: no request data is echoed, no scripts, cacheable.
"""

from __future__ import annotations

import html

from aiohttp import web

from bot.adapters.teams.inbound import PERSONAL_COMMANDS

ABOUT_PATH, PRIVACY_PATH, TERMS_PATH = "/about", "/privacy", "/terms"

_ABOUT = [
    "deptbot answers questions from your departments' own documents, with numbered sources, "
    "and only from documents you are allowed to read.",
    "In a personal chat, type your question. In a channel or group chat, mention deptbot first. Commands:",
    *[f"• {title} — {usage}" for title, usage in PERSONAL_COMMANDS],
    "Can't ask a department you need? Ask that department's admins for access. "
    "Something wrong with an answer? Use 👍/👎, or give the request id shown under the "
    "answer to the people who run deptbot in your organisation.",
]

_PRIVACY = [
    "deptbot is run by your organisation on its own servers. This page describes what the "
    "deptbot software does; your organisation's own privacy statement also applies.",
    "To decide what you may read, deptbot looks up your e-mail address in Microsoft Teams "
    "and the groups it belongs to in your organisation's configuration. It reads the member "
    "list of a channel or group chat before answering there, and answers you privately when "
    "not everyone there may read the answer.",
    "For every question it keeps an audit record: who asked, when, where, which department, "
    "whether it was allowed, the ids of the documents cited (never their text), the model "
    "used, token counts and timings, and the text of your question. Feedback you give "
    "(👍/👎 and any comment) is kept with the audit record. Answers may be cached for a "
    "limited time, and recent questions are kept in memory for follow-ups.",
    "If your organisation has configured a cloud language model, your question, the "
    "conversation's recent turns and the document excerpts used to answer are sent to that "
    "provider. Otherwise nothing leaves your organisation's servers.",
    "For access to, export of or erasure of your data, contact the people who run deptbot in "
    "your organisation.",
]

_TERMS = [
    "deptbot is provided by your organisation for work questions; your organisation's "
    "policies for its IT systems apply to its use.",
    "Answers are generated from department documents and may be incomplete, out of date or "
    "wrong. Check the cited source before you act on an answer, and ask the department when "
    "it matters.",
    "Do not try to obtain documents you are not allowed to read. Questions and answers are "
    "recorded as described in the privacy page.",
]


def _page(title: str, paragraphs: list[str]) -> web.Response:
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    text = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>deptbot — {html.escape(title)}</title></head>\n"
        f"<body><h1>deptbot — {html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
    return web.Response(
        text=text,
        content_type="text/html",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


async def about(request: web.Request) -> web.Response:
    return _page("help", _ABOUT)


async def privacy(request: web.Request) -> web.Response:
    return _page("privacy", _PRIVACY)


async def terms(request: web.Request) -> web.Response:
    return _page("terms of use", _TERMS)


def add_routes(app: web.Application) -> None:
    """GET ``/about``, ``/privacy`` and ``/terms`` (the default manifest links)."""
    app.router.add_get(ABOUT_PATH, about)
    app.router.add_get(PRIVACY_PATH, privacy)
    app.router.add_get(TERMS_PATH, terms)
