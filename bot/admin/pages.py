"""The console's HTML: Jinja2 templates (autoescaped) kept in this module, and the filters
that format numbers and times the same way on every page.

Templates live in Python strings rather than files so the package needs no data files and
no build step. Everything is server-rendered, semantic HTML: a skip link, one ``<h1>`` per
page, navigation landmarks with ``aria-current``, tables with ``<caption>`` and
``<th scope>``, every chart followed by the same numbers as a table. The only inline style
is one ``<style>`` element carrying the response's CSP nonce; there is no script at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from typing import Any

from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape
from markupsafe import Markup


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def money(value: float | None) -> str:
    return "—" if value is None else f"${value:,.2f}"


def num(value: float | int | None) -> str:
    return "—" if value is None else f"{value:,}"


def when(value: datetime | date | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def svg(markup: str) -> Markup:
    """A chart from ``bot.admin.charts``: it escapes every text it draws itself."""
    return Markup(markup)


CSS = """
:root{color-scheme:light;--fg:#1a1a1a;--muted:#4a4a4a;--bg:#ffffff;--line:#c8c8c8;--link:#0a4fb5;
--accent:#0a4fb5;--bad:#8a1020;--badbg:#fde7e9;--good:#14532d;--goodbg:#e6f4ea;--panel:#f4f5f7}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
a{color:var(--link)}
a:focus-visible,button:focus-visible,summary:focus-visible,main:focus-visible{
outline:3px solid var(--accent);outline-offset:2px}
.skip{position:absolute;left:-999px;top:0;background:#fff;padding:.5rem 1rem;z-index:10}
.skip:focus{left:1rem;top:1rem}
header.top{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;justify-content:space-between;
padding:.75rem 1.5rem;border-bottom:1px solid var(--line);background:var(--panel)}
.brand{font-weight:700;margin:0}
nav ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:.25rem 1rem}
nav a[aria-current]{font-weight:700;color:var(--fg);text-decoration-thickness:3px}
nav.pages{padding:.5rem 1.5rem;border-bottom:1px solid var(--line)}
main{padding:1rem 1.5rem 3rem;max-width:72rem}
h1{font-size:1.6rem;margin:.5rem 0 1rem}h2{font-size:1.25rem;margin:2rem 0 .5rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(12rem,1fr));gap:.75rem;margin:0}
.cards div{border:1px solid var(--line);border-radius:6px;padding:.5rem .75rem}
.cards dt{color:var(--muted);font-size:.9rem}.cards dd{margin:0;font-size:1.3rem;font-weight:600}
.cards dd small{font-size:.85rem;font-weight:400;color:var(--muted)}
table{border-collapse:collapse;margin:.5rem 0 1rem;min-width:20rem}
caption{text-align:left;font-weight:600;padding:.25rem 0}
th,td{border:1px solid var(--line);padding:.3rem .6rem;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
thead th{background:var(--panel)}
.regression td,.regression th{background:var(--badbg);color:var(--bad)}
.note{color:var(--muted)}
.alert{border-left:4px solid var(--bad);background:var(--badbg);color:var(--bad);padding:.5rem .75rem}
.ok{border-left:4px solid var(--good);background:var(--goodbg);color:var(--good);padding:.5rem .75rem}
button{font:inherit;padding:.4rem .9rem;border:1px solid var(--accent);border-radius:4px;
background:var(--accent);color:#fff;cursor:pointer}
button.link{background:none;color:var(--link);border:none;text-decoration:underline;padding:0}
form.inline{display:inline}
figure{margin:1rem 0}figure svg{max-width:100%;height:auto}
th ul,th .note{font-weight:400}
details{margin:.25rem 0 1rem}summary{cursor:pointer;color:var(--link)}
progress{width:20rem;height:1.2rem}
"""

BASE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
{% if reload_seconds %}<meta http-equiv="refresh" content="{{ reload_seconds }}">{% endif %}
<title>{{ title }} — deptbot admin</title>
<style nonce="{{ nonce }}">{{ css }}</style>
</head>
<body>
<a class="skip" href="#main">Skip to main content</a>
<header class="top">
<p class="brand">deptbot admin{% if user %} <span class="note">· {{ user }}</span>{% endif %}</p>
{% if departments|length > 1 %}
<nav aria-label="Departments"><ul>
{% for d in departments %}
<li><a href="/admin/d/{{ d.name }}"{% if dept and d.name == dept.name %} aria-current="page"{% endif %}>
{{- d.title }}</a></li>
{% endfor %}
</ul></nav>
{% endif %}
{% if csrf %}
<form class="inline" method="post" action="/admin/signout">
<input type="hidden" name="csrf" value="{{ csrf }}">
<button type="submit" class="link">Sign out</button>
</form>
{% endif %}
</header>
{% if dept %}
<nav class="pages" aria-label="{{ dept.title }} pages"><ul>
{% for key, label in tabs %}
<li><a href="/admin/d/{{ dept.name }}{{ key }}{% if key in dated %}?days={{ days }}{% endif %}"
{%- if key == tab %} aria-current="page"{% endif %}>{{ label }}</a></li>
{% endfor %}
</ul></nav>
{% endif %}
<main id="main" tabindex="-1">
<h1>{{ heading or title }}</h1>
{% block content %}{% endblock %}
</main>
</body>
</html>
"""

MESSAGE = """{% extends "base.html" %}
{% block content %}
{% for line in lines %}<p>{{ line }}</p>{% endfor %}
{% if links %}
<ul>{% for href, label in links %}<li><a href="{{ href }}">{{ label }}</a></li>{% endfor %}</ul>
{% endif %}
{% endblock %}
"""

SIGNIN = """{% extends "base.html" %}
{% block content %}
<p>This link signs you in to the deptbot admin console. It works once.</p>
<form method="post" action="/admin/signin">
<input type="hidden" name="token" value="{{ token }}">
<input type="hidden" name="csrf" value="{{ signin_csrf }}">
<button type="submit">Sign in</button>
</form>
{% endblock %}
"""

PICKER = """{% extends "base.html" %}
{% block content %}
<p>You administer these departments. Choose one:</p>
<ul>{% for d in departments %}<li><a href="/admin/d/{{ d.name }}">{{ d.title }}</a></li>{% endfor %}</ul>
{% endblock %}
"""

MACROS = """{% macro periods(base, days) -%}
<nav aria-label="Time period"><ul>
{% for n in (7, 30, 90) %}
<li><a href="{{ base }}?days={{ n }}"{% if n == days %} aria-current="page"{% endif %}>
{{- "Last " ~ n ~ " days" }}</a></li>
{% endfor %}
</ul></nav>
{%- endmacro %}
{% macro chart(svg_markup, caption, head, rows, id) -%}
<figure aria-labelledby="{{ id }}-cap">
{{ svg_markup }}
<figcaption id="{{ id }}-cap">{{ caption }}</figcaption>
</figure>
<details><summary>{{ caption }}: data table</summary>
<table>
<caption>{{ caption }}</caption>
<thead><tr>
{% for h in head %}<th scope="col"{% if not loop.first %} class="n"{% endif %}>{{ h }}</th>{% endfor %}
</tr></thead>
<tbody>
{% for row in rows %}
<tr><th scope="row">{{ row[0] }}</th>{% for v in row[1:] %}<td class="n">{{ v }}</td>{% endfor %}</tr>
{% endfor %}
</tbody>
</table>
</details>
{%- endmacro %}
{% macro doclink(doc) -%}
{% if doc.link %}<a href="{{ doc.link }}">{{ doc.title or doc.path }}</a>
{%- else %}{{ doc.title or doc.path }}{% endif %}
{%- endmacro %}
{% macro card(label, value, small="") -%}
<div><dt>{{ label }}</dt><dd>{{ value }}{% if small %} <small>{{ small }}</small>{% endif %}</dd></div>
{%- endmacro %}
{% macro head(cells) -%}
<thead><tr>
{% for c in cells %}<th scope="col"{% if not loop.first %} class="n"{% endif %}>{{ c }}</th>{% endfor %}
</tr></thead>
{%- endmacro %}
{% macro row(label, cells) -%}
<tr><th scope="row">{{ label }}</th>{% for c in cells %}<td class="n">{{ c }}</td>{% endfor %}</tr>
{%- endmacro %}
"""

OVERVIEW = """{% extends "base.html" %}
{% from "macros.html" import periods, chart, card, head, row %}
{% block content %}
{{ periods('/admin/d/' ~ dept.name, days) }}
<p class="note">{{ o.start|when }} to {{ o.end|when }} (UTC days).</p>
<h2>Summary</h2>
<dl class="cards">
{{ card("Questions", o.totals.total|num) }}
{{ card("Answered", o.totals.answered|num) }}
{{ card('"Don\\'t know"', o.totals.dont_know|num) }}
{{ card("Denied", o.totals.denied|num) }}
{{ card("Sources only", o.totals.sources_only|num) }}
{{ card("Errors", o.totals.error|num) }}
{{ card("Satisfaction (thumbs-up share)", o.satisfaction.share|pct,
        o.satisfaction.up ~ " up · " ~ o.satisfaction.down ~ " down") }}
{{ card("Latency p50 / p95", o.p50_ms|ms, "/ " ~ o.p95_ms|ms) }}
{{ card("Tokens", o.tokens|num, o.input_tokens|num ~ " in · " ~ o.output_tokens|num ~ " out") }}
{{ card("Cost", o.cost|money) }}
{{ card("Cache hit rate", o.cache_rate|pct, o.cache_hits|num ~ " hits") }}
</dl>

<h2>Questions per day</h2>
{{ chart(status_chart, "Questions per day by outcome", status_head, status_rows, "status") }}

<h2>Satisfaction and latency</h2>
{{ chart(latency_chart, "Latency per day (p50 and p95)", latency_head, latency_rows, "latency") }}
{{ chart(votes_chart, "Votes per day", votes_head, votes_rows, "votes") }}

<h2>Cost and tokens against budget</h2>
{% set b = o.budget %}
<table>
<caption>Spend against the daily budget</caption>
{{ head(["Measure", "Today", "Busiest day in period", "Period total", "Daily limit",
         "Today's share of limit"]) }}
<tbody>
{{ row("Cost", [b.today_cost|money, b.peak_day_cost|money, b.period_cost|money,
                b.daily_cost_limit|money if b.daily_cost_limit > 0 else "no limit",
                b.today_cost_share|pct]) }}
{{ row("Tokens", [b.today_tokens|num, b.peak_day_tokens|num, b.period_tokens|num,
                  b.daily_tokens_limit|num if b.daily_tokens_limit > 0 else "no limit",
                  b.today_tokens_share|pct]) }}
</tbody>
</table>
{{ chart(cost_chart, "Cost per day", cost_head, cost_rows, "cost") }}

<h2>Where answers were generated</h2>
{{ chart(route_chart, "Requests by route", route_head, route_rows, "routes") }}

{% if o.pilot %}
{% set p = o.pilot %}
<h2>Pilot: this week against last week</h2>
<p class="note">The pilot admits {{ p.entries }} access {{ 'entry' if p.entries == 1 else 'entries' }}
and {{ p.channels }} {{ 'channel' if p.channels == 1 else 'channels' }}.</p>
<table>
<caption>Pilot week over week</caption>
{{ head(["Measure",
         "Last week (" ~ p.last_week.start|when ~ " – " ~ p.last_week.end|when ~ ")",
         "This week (" ~ p.this_week.start|when ~ " – " ~ p.this_week.end|when ~ ")"]) }}
<tbody>
{% set l, t = p.last_week, p.this_week %}
{{ row("Questions", [l.questions|num, t.questions|num]) }}
{{ row("Answered", [l.answered|num, t.answered|num]) }}
{{ row('"Don\\'t know"', [l.dont_know|num, t.dont_know|num]) }}
{{ row("Satisfaction", [l.satisfaction.share|pct ~ " (" ~ l.satisfaction.votes ~ " votes)",
                        t.satisfaction.share|pct ~ " (" ~ t.satisfaction.votes ~ " votes)"]) }}
{{ row("Latency p50", [l.p50_ms|ms, t.p50_ms|ms]) }}
{{ row("People asking", [l.askers|num, t.askers|num]) }}
</tbody>
</table>
{% endif %}
{% endblock %}
"""

GAPS = """{% extends "base.html" %}
{% from "macros.html" import periods, doclink %}
{% block content %}
{{ periods('/admin/d/' ~ dept.name ~ '/gaps', days) }}
<p>Questions that went unanswered, were answered with low confidence or got a thumbs-down, grouped by
similarity, with the documents closest to them: the pages worth writing or fixing first.</p>
{% if not show_text %}
<p class="note">Question text is not shown for {{ dept.title }} (its <code>admins_see_questions</code>
setting is off): each group is named after its closest documents.</p>
{% endif %}
{% if groups %}
<table>
<caption>Knowledge gaps, most frequent first</caption>
<thead><tr><th scope="col">Topic</th><th scope="col" class="n">Questions</th>
<th scope="col" class="n">"Don't know"</th><th scope="col" class="n">Low confidence</th>
<th scope="col" class="n">Thumbs down</th><th scope="col">Last asked</th>
<th scope="col">Closest documents</th></tr></thead>
<tbody>
{% for g in groups %}
<tr id="gap-{{ g.key }}">
<th scope="row">{{ g.topic }}
{% if show_text and g.terms %}<br><span class="note">Terms: {{ g.terms|join(', ') }}</span>{% endif %}
{% if show_text and g.examples %}<ul>{% for e in g.examples %}<li>{{ e }}</li>{% endfor %}</ul>{% endif %}
</th>
<td class="n">{{ g.count|num }}</td><td class="n">{{ g.dont_know|num }}</td>
<td class="n">{{ g.low_confidence|num }}</td><td class="n">{{ g.down|num }}</td>
<td>{{ g.last_seen|when }}</td>
<td>{% if g.closest %}<ul>
{% for c in g.closest %}<li>{{ doclink(c.doc) }} <span class="note">({{ '%.2f'|format(c.score) }})</span></li>
{% endfor %}
</ul>{% else %}<span class="note">none close</span>{% endif %}</td>
</tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p>No gaps in this period.</p>
{% endif %}
{% endblock %}
"""

DOCUMENTS = """{% extends "base.html" %}
{% from "macros.html" import periods, doclink, card %}
{% block content %}
{{ periods('/admin/d/' ~ dept.name ~ '/documents', days) }}
<h2>Refresh</h2>
{% if job and job.running %}
<p role="status"><a href="/admin/d/{{ dept.name }}/refresh">A refresh is running
({{ job.done }} of {{ job.total or '?' }} files)</a>.</p>
{% else %}
{% if job %}
<p class="{{ 'ok' if job.ok else 'alert' }}">Last refresh from this console: {{ job.outcome }}</p>
{% endif %}
<form method="post" action="/admin/d/{{ dept.name }}/refresh">
<input type="hidden" name="csrf" value="{{ csrf }}">
<button type="submit">Refresh {{ dept.title }} knowledge now</button>
</form>
{% endif %}
{% if not r.indexed %}
<p>{{ dept.title }} has no index yet. A refresh builds it.</p>
{% else %}
<dl class="cards">
{{ card("Documents", r.documents|num) }}
{{ card("Passages", r.chunks|num) }}
{{ card("Index built", r.built_at|when) }}
{{ card("Failed to index", r.failed|length) }}
</dl>
<h2>Most cited</h2>
{% if r.most_cited %}
<table><caption>Most cited documents in the last {{ days }} days</caption>
<thead><tr><th scope="col">Document</th><th scope="col" class="n">Citations</th>
<th scope="col">Last cited</th></tr></thead>
<tbody>
{% for c in r.most_cited %}
<tr><th scope="row">{{ doclink(c.doc) }}</th><td class="n">{{ c.citations|num }}</td>
<td>{{ c.last_cited|when }}</td></tr>
{% endfor %}
</tbody></table>
{% else %}<p>No citations in this period.</p>{% endif %}
<h2>Never cited</h2>
{% if r.never_cited %}
<table><caption>Documents not cited in the last {{ days }} days</caption>
<thead><tr><th scope="col">Document</th><th scope="col">Path</th></tr></thead>
<tbody>
{% for d in r.never_cited %}<tr><th scope="row">{{ doclink(d) }}</th><td>{{ d.path }}</td></tr>{% endfor %}
</tbody></table>
{% else %}<p>Every document was cited in this period.</p>{% endif %}
<h2>Stale</h2>
{% if r.stale %}
<table><caption>Documents not updated for more than {{ r.stale_after_days }} days</caption>
<thead><tr><th scope="col">Document</th><th scope="col">Updated</th>
<th scope="col" class="n">Age (days)</th></tr></thead>
<tbody>
{% for s in r.stale %}
<tr><th scope="row">{{ doclink(s.doc) }}</th><td>{{ s.updated|when }}</td>
<td class="n">{{ s.age_days|num }}</td></tr>
{% endfor %}
</tbody></table>
{% else %}<p>No document is older than {{ r.stale_after_days }} days.</p>{% endif %}
{% endif %}
<h2>Failed to index</h2>
{% if r.failed %}
<table><caption>Files the last refresh could not index</caption>
<thead><tr><th scope="col">File</th><th scope="col">Reason</th></tr></thead>
<tbody>
{% for f in r.failed %}<tr><th scope="row">{{ f.path }}</th><td>{{ f.reason }}</td></tr>{% endfor %}
</tbody></table>
{% else %}<p>No file failed.</p>{% endif %}
<h2>Restricted documents</h2>
<p>{{ r.restricted.above_default|num }} document(s) are classified above the department's default;
{{ r.restricted.with_audience|num }} have an audience of their own.</p>
{% if r.restricted.by_classification %}
<table><caption>Documents by classification</caption>
<thead><tr><th scope="col">Classification</th><th scope="col" class="n">Documents</th></tr></thead>
<tbody>
{% for label, n in r.restricted.by_classification %}
<tr><th scope="row">{{ label }}</th><td class="n">{{ n|num }}</td></tr>
{% endfor %}
</tbody></table>
{% endif %}
{% endblock %}
"""

REFRESH = """{% extends "base.html" %}
{% block content %}
{% if job is none %}
<p>No refresh was started from this console since the server started.</p>
{% elif job.running %}
<p role="status">Refreshing {{ dept.title }} knowledge: {{ job.done }} of {{ job.total or '?' }} files.</p>
<p><label for="progress">Progress</label>
<progress id="progress" max="{{ job.total or 1 }}" value="{{ job.done }}">
{{- job.done }} of {{ job.total }}</progress>
</p>
<p class="note">This page reloads every {{ reload_seconds }} seconds.
<a href="/admin/d/{{ dept.name }}/refresh">Reload now</a>.</p>
{% else %}
<p role="status" class="{{ 'ok' if job.ok else 'alert' }}">{{ job.outcome }}</p>
{% endif %}
<p><a href="/admin/d/{{ dept.name }}/documents">Back to documents</a></p>
{% endblock %}
"""

FEEDBACK = """{% extends "base.html" %}
{% from "macros.html" import doclink %}
{% block content %}
{% if show_text %}
<p>Thumbs-down votes, newest first, with the answer's request id (for <code>deptbot audit tail</code>)
and its sources.</p>
{% if page.items %}
<table>
<caption>Negative feedback</caption>
<thead><tr><th scope="col">When</th><th scope="col">Answer</th>
<th scope="col">Question</th><th scope="col">Reason given</th>
<th scope="col">Outcome</th><th scope="col">Route</th><th scope="col">Sources</th></tr></thead>
<tbody>
{% for f in page.items %}
<tr><th scope="row">{{ f.time|when }}</th><td><code>{{ f.request_id }}</code></td>
<td>{{ f.question if f.question is not none else '—' }}</td><td>{{ f.reason if f.reason else '—' }}</td>
<td>{{ f.status }}</td><td>{{ f.route or '—' }}</td>
<td>{% if f.sources %}<ul>{% for d in f.sources %}<li>{{ doclink(d) }}</li>{% endfor %}</ul>
{%- else %}—{% endif %}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p>No thumbs-down feedback yet.</p>
{% endif %}
{% else %}
<p>Thumbs-down votes grouped by the document the answer relied on most.</p>
<p class="note">Questions, comments and single votes are not shown for {{ dept.title }} (its
<code>admins_see_questions</code> setting is off): votes are counted per document and by day, and
groups of fewer than two votes are counted together.</p>
{% if page.groups %}
<table>
<caption>Negative feedback by document</caption>
<thead><tr><th scope="col">Documents</th><th scope="col" class="n">Thumbs down</th>
<th scope="col">First day</th><th scope="col">Last day</th></tr></thead>
<tbody>
{% for g in page.groups %}
<tr><th scope="row">{% if g.closest %}<ul>
{%- for c in g.closest %}<li>{{ doclink(c.doc) }}</li>{% endfor %}</ul>
{%- else %}{{ g.topic }}{% endif %}</th>
<td class="n">{{ g.count|num }}</td>
<td>{{ g.first_seen.date()|when }}</td><td>{{ g.last_seen.date()|when }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p>No thumbs-down feedback yet.</p>
{% endif %}
{% endif %}
{% endblock %}
"""

EVALS = """{% extends "base.html" %}
{% from "macros.html" import chart %}
{% block content %}
{% set latest = trend.latest %}
{% if latest is none %}
<p>No answer-level eval run recorded for {{ dept.title }} yet. Runs come from
<code>deptbot eval --qa {{ dept.name }}</code> and the scheduled refreshes.</p>
{% else %}
<h2>Latest run</h2>
<p class="{{ 'ok' if latest.passed else 'alert' }}">{{ latest.time|when }} ({{ latest.trigger }},
{{ latest.cases }} cases):
{% if latest.passed %}passed{% else %}below thresholds: {{ latest.below|join(', ') }}{% endif %}.</p>
{% if latest.failed_cases %}<p>Failing cases: {{ latest.failed_cases|join(', ') }}</p>{% endif %}
{% if trend.regressions %}
<h2>Regressions</h2>
<ul>
{% for g in trend.regressions %}
<li class="alert">Regression on {{ g.time|when }}: {{ g.metric }} fell from {{ g.before|pct }}
to {{ g.after|pct }}</li>
{% endfor %}
</ul>
{% endif %}
<h2>Trend</h2>
{{ chart(trend_chart, "Eval scores per run", trend_head, trend_rows, "trend") }}
<table>
<caption>Eval runs, newest first (a regression is a drop of {{ trend.tolerance|pct }} or more,
as in the alerts)</caption>
<thead><tr><th scope="col">Run</th><th scope="col">Trigger</th><th scope="col" class="n">Cases</th>
<th scope="col" class="n">Sources hit</th><th scope="col" class="n">Facts hit</th>
<th scope="col" class="n">Answered</th><th scope="col" class="n">Refusals</th>
<th scope="col" class="n">p95</th>
<th scope="col">Result</th></tr></thead>
<tbody>
{% for run in trend.runs %}
<tr{% if run.time in regressed %} class="regression"{% endif %}><th scope="row">{{ run.time|when }}</th>
<td>{{ run.trigger }}</td><td class="n">{{ run.cases }}</td><td class="n">{{ run.source_hit|pct }}</td>
<td class="n">{{ run.fact_hit|pct }}</td><td class="n">{{ run.answered|pct }}</td>
<td class="n">{{ run.refusal|pct }}</td><td class="n">{{ run.p95_ms|ms }}</td>
<td>{% if run.time in regressed %}regression; {% endif %}
{{- 'passed' if run.passed else 'below: ' ~ run.below|join(', ') }}</td></tr>
{% endfor %}
</tbody>
</table>
{% endif %}
{% endblock %}
"""

TEMPLATES: Mapping[str, str] = {
    "base.html": BASE,
    "macros.html": MACROS,
    "message.html": MESSAGE,
    "signin.html": SIGNIN,
    "picker.html": PICKER,
    "overview.html": OVERVIEW,
    "gaps.html": GAPS,
    "documents.html": DOCUMENTS,
    "refresh.html": REFRESH,
    "feedback.html": FEEDBACK,
    "evals.html": EVALS,
}

TABS = (
    ("", "Overview"),
    ("/gaps", "Knowledge gaps"),
    ("/documents", "Documents"),
    ("/feedback", "Feedback"),
    ("/evals", "Evals"),
)


DATED = frozenset({"", "/gaps", "/documents"})  # the pages with a 7/30/90-day switch


@cache
def environment() -> Environment:
    env = Environment(
        loader=DictLoader(dict(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=pct, ms=ms, money=money, num=num, when=when)
    return env


def render(name: str, **context: Any) -> str:
    """One page; ``context`` must hold what ``base.html`` needs (see ``web.Console.page``)."""
    context.setdefault("css", Markup(CSS))
    context.setdefault("tabs", TABS)
    context.setdefault("dated", DATED)
    return environment().get_template(name).render(**context)
