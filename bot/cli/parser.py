"""``build_parser``: every command, its options and help text, and the handler it runs.
Importing it imports no handler's dependencies (those load when the command runs)."""

from __future__ import annotations

import argparse

from bot import package_version
from bot.cli.admin import cmd_admin_link
from bot.cli.answers import cmd_ask, cmd_run, cmd_templates
from bot.cli.audit import cmd_audit_export, cmd_audit_init_key, cmd_audit_verify, cmd_retention_run
from bot.cli.chat import cmd_chat
from bot.cli.check import cmd_check
from bot.cli.db import cmd_db_copy, cmd_db_migrate, cmd_db_status, cmd_db_vector_index
from bot.cli.directory import cmd_who
from bot.cli.evals import cmd_eval_any
from bot.cli.index import cmd_index
from bot.cli.keys import cmd_keys_init, cmd_keys_rotate, cmd_keys_status
from bot.cli.privacy import cmd_privacy_erase, cmd_privacy_export
from bot.cli.records import cmd_audit_tail, cmd_usage
from bot.cli.serve import cmd_manifest, cmd_serve


def email(value: str) -> str:
    """``--user``: an e-mail address, checked here so that a bare name gets "not an e-mail
    address" (exit 2) rather than the denial for an unknown person (exit 3)."""
    local, at, domain = value.strip().rpartition("@")
    if not (at and local and domain) or any(ch.isspace() for ch in value.strip()):
        raise argparse.ArgumentTypeError(f"{value!r} is not an e-mail address (like alice@example.com)")
    return value.strip()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deptbot", description="Department-aware assistant with cited answers.")
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    p.add_argument(
        "--departments", help="departments folder (env DEPTBOT_DEPARTMENTS, default ./departments)"
    )
    p.add_argument(
        "--state", help="state folder for indexes and databases (env DEPTBOT_STATE, default ./.deptbot)"
    )
    p.add_argument("--settings", help="settings file overriding bot/settings.toml (env DEPTBOT_SETTINGS)")
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="diagnostics on stderr: deptbot's own logs and timings (-vv: debug, and other libraries' logs)",
    )
    sub = p.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="deptbot COMMAND -h describes each one"
    )

    c = sub.add_parser("check", help="validate department configs, folders and providers")
    c.add_argument(
        "--directory",
        action="store_true",
        help="also read every directory group (Slack, Entra ID, SCIM) once: state, members, age",
    )
    c.set_defaults(func=cmd_check)

    c = sub.add_parser("index", help="build or refresh department indexes incrementally")
    c.add_argument("names", nargs="*", metavar="DEPT", help="departments to index (default: all)")
    c.set_defaults(func=cmd_index)

    c = sub.add_parser("ask", help="ask one question")
    c.add_argument("question", nargs="+", help="the question (quotes optional)")
    c.add_argument("--user", metavar="EMAIL", type=email, required=True, help="asker's e-mail")
    c.add_argument(
        "--department", metavar="DEPT", help="ask this department instead of routing automatically"
    )
    c.add_argument("--json", action="store_true", help="print the Answer as one JSON object")
    c.set_defaults(func=cmd_ask)

    c = sub.add_parser(
        "run",
        help="run a department template",
        description='Run a template: deptbot run TEMPLATE "INPUT" --user EMAIL [--department D]. '
        "deptbot templates --user EMAIL lists the ones you may run.",
    )
    c.add_argument("template", metavar="TEMPLATE", help="template name (deptbot templates lists them)")
    c.add_argument("input", metavar="INPUT", help="what the template works on, in quotes")
    c.add_argument(
        "--user",
        metavar="EMAIL",
        type=email,
        required=True,
        help="e-mail of the person running it (role-checked)",
    )
    c.add_argument(
        "--department", metavar="DEPT", help="needed only when two departments share a template name"
    )
    c.add_argument("--json", action="store_true", help="print the Answer as one JSON object")
    c.set_defaults(func=cmd_run)

    c = sub.add_parser("templates", help="list templates, or those one person may run, with examples")
    c.add_argument("--user", metavar="EMAIL", type=email, help="only the templates this e-mail may run")
    c.add_argument("--json", action="store_true", help="one JSON list of templates")
    c.set_defaults(func=cmd_templates)

    c = sub.add_parser("who", help="one person's groups, where each comes from, and what they may do")
    c.add_argument("email", metavar="EMAIL", help="the person's e-mail address")
    c.add_argument("--json", action="store_true", help="print everything as one JSON object")
    c.set_defaults(func=cmd_who)

    c = sub.add_parser("chat", help="interactive terminal session with history")
    c.add_argument("--user", metavar="EMAIL", type=email, required=True, help="asker's e-mail")
    c.add_argument("--department", metavar="DEPT", help="start pinned to this department (/dept changes it)")
    c.set_defaults(func=cmd_chat)

    c = sub.add_parser(
        "eval",
        help="retrieval quality on a BEIR folder, or answer evals through the pipeline (--qa)",
        description="deptbot eval BEIR_DIR scores retrieval; deptbot eval --qa [DEPT] runs the evals: "
        "blocks of department files as a named user (exit 1 below a department's thresholds).",
    )
    c.add_argument(
        "beir_dir",
        metavar="BEIR_DIR",
        nargs="?",
        help="folder with corpus.jsonl, queries.jsonl and qrels/test.tsv",
    )
    c.add_argument(
        "--qa",
        nargs="?",
        const="*",
        metavar="DEPT",
        help="run the answer evals of DEPT (default: every department with an evals: block)",
    )
    c.add_argument("--file", metavar="EVALS", help="with --qa: run an eval file instead (YAML, same format)")
    c.add_argument(
        "--user",
        metavar="EMAIL",
        type=email,
        help="with --qa: ask as this person (default: evals.user or first admin)",
    )
    c.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    c.add_argument(
        "--mode",
        choices=["hybrid", "bm25", "dense"],
        default="hybrid",
        help="retrieval to score (default hybrid)",
    )
    c.add_argument("--embedder", help="override the settings' embedder (wordllama | minilm)")
    c.set_defaults(func=cmd_eval_any)

    c = sub.add_parser("usage", help="tokens and cost per user and department")
    c.add_argument("--user", metavar="EMAIL", help="only this e-mail")
    c.add_argument("--department", metavar="DEPT", help="only this department")
    c.add_argument("--since", help="first day to include, YYYY-MM-DD")
    c.add_argument("--json", action="store_true", help="print the rows as JSON")
    c.set_defaults(func=cmd_usage)

    c = sub.add_parser("serve", help="run the HTTP server for Slack, Teams and /healthz")
    c.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    c.add_argument("--port", type=int, default=3978, help="port to listen on (default 3978)")
    c.add_argument("--slack-socket-mode", action="store_true", help="connect to Slack over Socket Mode")
    c.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=None,
        help="log lines as text or one JSON object per line (default: setting logging.format)",
    )
    c.set_defaults(func=cmd_serve)

    c = sub.add_parser("manifest", help="print the Slack manifest or build the Teams app package")
    c.add_argument("platform", choices=["slack", "teams"], help="slack or teams")
    c.add_argument("--url", help="slack: public base URL, e.g. https://bot.example.com")
    c.add_argument("--socket-mode", action="store_true", help="slack: the Socket Mode variant")
    c.add_argument("--app-id", help="teams: the Azure Bot's Microsoft App ID")
    c.add_argument("--domain", help="teams: the host serving /api/messages")
    c.add_argument("--out", help="teams: zip file to write (default deptbot-teams.zip)")
    c.add_argument(
        "--website-url", metavar="URL", help="teams: https link for 'website' (default https://HOST/about)"
    )
    c.add_argument(
        "--privacy-url", metavar="URL", help="teams: https privacy statement (default https://HOST/privacy)"
    )
    c.add_argument(
        "--terms-url", metavar="URL", help="teams: https terms of use (default https://HOST/terms)"
    )
    c.set_defaults(func=cmd_manifest)

    c = sub.add_parser("audit", help="read, verify and export the audit log")
    audit_sub = c.add_subparsers(
        dest="audit_command", required=True, metavar="ACTION", help="tail | verify | export | init-key"
    )
    t = audit_sub.add_parser("tail", help="the latest audit rows")
    t.add_argument("-n", type=int, default=20, metavar="N", help="how many rows (default 20)")
    t.add_argument("--user", metavar="EMAIL", help="only this e-mail")
    t.add_argument("--department", metavar="DEPT", help="only this department")
    t.add_argument("--json", action="store_true", help="print the rows as JSON")
    t.set_defaults(func=cmd_audit_tail)
    t = audit_sub.add_parser(
        "verify",
        help="check the audit chain (exit 1 naming the first bad row); prints the checkpoint line",
    )
    t.add_argument("--file", metavar="EXPORT", help="verify an `audit export` JSONL file instead (offline)")
    t.add_argument(
        "--expect", metavar="SEQ:MAC", help="a checkpoint kept elsewhere; catches rows cut off the end"
    )
    t.set_defaults(func=cmd_audit_verify)
    t = audit_sub.add_parser("export", help="stream audit rows with their chain fields (JSON lines or CSV)")
    t.add_argument("--since", metavar="DATE", help="from the first row on or after DATE (YYYY-MM-DD, UTC)")
    t.add_argument(
        "--format", choices=["jsonl", "csv"], default="jsonl", help="jsonl (default; verifiable) or csv"
    )
    t.add_argument("--out", metavar="FILE", help="write to FILE (0600) instead of stdout")
    t.add_argument(
        "--with-text", action="store_true", help="include each question (personal text; left out by default)"
    )
    t.set_defaults(func=cmd_audit_export)
    t = audit_sub.add_parser(
        "init-key", help="make the audit key once (PostgreSQL: every replica needs the same one)"
    )
    t.add_argument("--print", action="store_true", help="print a new key (for DEPTBOT_AUDIT_KEY) instead")
    t.set_defaults(func=cmd_audit_init_key)

    c = sub.add_parser("retention", help="delete what the [retention] settings say has expired")
    retention_sub = c.add_subparsers(dest="retention_command", required=True, metavar="ACTION", help="run")
    t = retention_sub.add_parser("run", help="purge expired data now (deptbot serve does it daily)")
    t.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    t.set_defaults(func=cmd_retention_run)

    c = sub.add_parser(
        "privacy", help="a person's privacy request: export or erase what is stored about them"
    )
    privacy_sub = c.add_subparsers(
        dest="privacy_command", required=True, metavar="ACTION", help="export | erase"
    )
    t = privacy_sub.add_parser(
        "export",
        help="everything stored about EMAIL as JSON, with a short summary",
        epilog="exit codes: 0 complete; 4 incomplete: a recorded copy of the state was not read "
        "(see the notes)",
    )
    t.add_argument("email", metavar="EMAIL", help="the person's e-mail address")
    t.add_argument("--out", metavar="FILE", help="write the JSON to FILE (0600) instead of stdout")
    t.set_defaults(func=cmd_privacy_export)
    t = privacy_sub.add_parser(
        "erase",
        help="make EMAIL's text unrecoverable and pseudonymize their records",
        epilog="exit codes: 0 erased; 1 part failed (FAILED lines: run it again); 4 incomplete: a "
        "recorded copy of the state elsewhere was not reached (see the notes)",
    )
    t.add_argument("email", metavar="EMAIL", help="the person's e-mail address")
    t.add_argument(
        "--yes", action="store_true", help="do not ask to type the e-mail again (cannot be undone)"
    )
    t.set_defaults(func=cmd_privacy_erase)

    c = sub.add_parser("admin", help="the admin console (/admin on the deptbot serve port)")
    admin_sub = c.add_subparsers(dest="admin_command", required=True, metavar="ACTION", help="link")
    t = admin_sub.add_parser(
        "link", help="a one-time sign-in link for a department admin (valid [admin] link_minutes)"
    )
    t.add_argument("--user", metavar="EMAIL", type=email, required=True, help="the admin's e-mail address")
    t.set_defaults(func=cmd_admin_link)

    c = sub.add_parser("db", help="the PostgreSQL schema (only with DEPTBOT_DATABASE_URL)")
    db_sub = c.add_subparsers(
        dest="db_command", required=True, metavar="ACTION", help="migrate | status | copy | vector-index"
    )
    t = db_sub.add_parser("migrate", help="apply pending schema migrations (safe from every replica at once)")
    t.set_defaults(func=cmd_db_migrate)
    t = db_sub.add_parser("status", help="the schema version and how many migrations are pending")
    t.set_defaults(func=cmd_db_status)
    t = db_sub.add_parser(
        "copy", help="copy the SQLite audit, usage and chat state into an empty PostgreSQL database"
    )
    t.add_argument("--from", dest="source", metavar="sqlite:DIR", help="the state folder (default: --state)")
    t.add_argument("--to", metavar="URL", help="postgresql://… (default: DEPTBOT_DATABASE_URL)")
    t.set_defaults(func=cmd_db_copy)
    t = db_sub.add_parser(
        "vector-index", help='create the pgvector HNSW indexes [knowledge] dense = "pgvector" searches with'
    )
    t.set_defaults(func=cmd_db_vector_index)

    c = sub.add_parser("keys", help="the master key that protects personal text at rest")
    keys_sub = c.add_subparsers(
        dest="keys_command", required=True, metavar="ACTION", help="init | rotate | status"
    )
    t = keys_sub.add_parser("init", help="write a new master key file (0600); never overwrites one")
    t.add_argument(
        "--file", metavar="PATH", help="where to write it (default: the privacy.master_key_file setting)"
    )
    t.add_argument(
        "--print",
        action="store_true",
        help="print a new key (for DEPTBOT_MASTER_KEY) instead of writing a file",
    )
    t.set_defaults(func=cmd_keys_init)
    t = keys_sub.add_parser(
        "rotate", help="new master key; re-wrap every data key (the data is not rewritten)"
    )
    t.add_argument(
        "--batch", type=int, default=500, metavar="N", help="data keys re-wrapped per transaction (500)"
    )
    t.set_defaults(func=cmd_keys_rotate)
    t = keys_sub.add_parser("status", help="which master key is in use and how many data keys it wraps")
    t.set_defaults(func=cmd_keys_status)

    return p
