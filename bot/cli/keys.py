"""``deptbot keys init|rotate|status``: the master key that wraps every data key.

``init`` writes a new key file (0600) and refuses to overwrite one; ``rotate`` makes a new
current key and re-wraps every data key with it (the encrypted text is not touched), keeping
the old key in the file until the last data key has moved, so an interrupted rotation
loses nothing and can simply be run again. Keys in ``DEPTBOT_MASTER_KEY`` cannot be written
by deptbot: put the new key first (``NEW,OLD``), run ``rotate``, then drop the old one.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.output import EXIT_ERROR, EXIT_OK, _err, _out
from bot.errors import ConfigError, DeptbotError, UsageError
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.store.pg_health import DatabaseHealth


def cmd_keys_init(args: argparse.Namespace, settings: Settings) -> int:
    from bot.governance import keys as mk
    from bot.governance.vault import vault_for

    if args.print:
        _out(mk.generate())
        _err(f"Set it as {mk.ENV_VAR}, or save it in the file {mk.SETTING} names.")
        return EXIT_OK
    configured = mk.configured_file(settings.section("privacy"))
    target = Path(args.file).expanduser() if args.file else configured
    if target is None:
        raise UsageError(
            f"Where should the key go? Pass --file PATH (outside the state folder, e.g. "
            f"/etc/deptbot/master.key) and set {mk.SETTING} to it, or set {mk.SETTING} first."
        )
    new = mk.generate()
    mk.write_new_file(target, [new])
    _out(
        f"Wrote a new master key to {target} (mode 0600, key {mk.key_id(mk.decode(new, where=str(target)))})."
    )
    _out("Back it up: without it the encrypted questions and answers cannot be read.")
    in_effect = (
        configured is not None
        and configured.resolve() == target.resolve()
        and not settings.env.get(mk.ENV_VAR, "").strip()
    )
    if not in_effect:
        _out(f"Now set {mk.SETTING} to {target} (e.g. DEPTBOT_PRIVACY__MASTER_KEY_FILE={target}).")
        _out("Data keys made until then stay readable; `deptbot keys rotate` re-wraps them.")
        return EXIT_OK
    vault = vault_for(settings)
    moved = vault.rewrap()
    _out(f"Re-wrapped {moved} existing data key(s) with the new key.")
    return EXIT_OK


def cmd_keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from bot.governance import keys as mk
    from bot.governance.vault import vault_for

    current = mk.load(settings.env, mk.configured_file(settings.section("privacy")))
    if current.source == "built-in":
        raise UsageError(
            "No master key is configured (the built-in default is in use): run `deptbot keys init` first."
        )
    if current.source == "file":
        assert current.file is not None
        old = [mk.encode(k.secret) for k in current.keys]
        mk.replace_file(
            current.file, [mk.generate(), *old]
        )  # step 1: new key current, old ones still accepted
        _out(f"New master key added to {current.file}; re-wrapping data keys…")
    vault = vault_for(settings)
    moved = vault.rewrap(batch=args.batch)
    left = vault.missing_master_keys()
    if left:
        _err(
            f"Data keys under master key(s) {', '.join(left)} could not be re-wrapped: "
            "those keys are not configured."
        )
        return EXIT_ERROR
    if current.source == "file":
        assert current.file is not None
        mk.replace_file(current.file, [mk.encode(vault.keys.current.secret)])  # step 2: old keys dropped
        _out(
            f"Re-wrapped {moved} data key(s) with key {vault.keys.current.id}; "
            "old key(s) removed from the file."
        )
    else:
        _out(f"Re-wrapped {moved} data key(s) with key {vault.keys.current.id} (the first in {mk.ENV_VAR}).")
        if len(current.keys) > 1:
            _out(f"You can now remove the old key(s) from {mk.ENV_VAR}.")
    return EXIT_OK


def cmd_keys_status(args: argparse.Namespace, settings: Settings) -> int:
    from bot.governance.vault import vault_for

    vault = vault_for(settings)
    status = vault.status()
    _out(f"Master key: {vault.keys.current.id} from {vault.keys.describe()}.")
    _out(
        f"Data keys: {status.total} "
        f"({', '.join(f'{n} under {m}' for m, n in status.by_master.items()) or 'none yet'})."
    )
    missing = vault.missing_master_keys()
    if missing:
        _err(f"Not configured here: master key(s) {', '.join(missing)} — their text cannot be read.")
        return EXIT_ERROR
    if vault.keys.is_builtin:
        _out("The built-in default key is public: run `deptbot keys init` to protect the text.")
    return EXIT_OK


BUILTIN_WARNING = "warning: personal text is encrypted with the built-in default key; run `deptbot keys init`"


def key_check(
    settings: Settings, database: DatabaseHealth | None = None
) -> tuple[list[ConfigError], list[str]]:
    """For ``deptbot check``: problems (a bad key setting; data keys wrapped with a master
    key that is not configured, i.e. text nobody here can read) and warnings (the public
    built-in key in use, or still wrapping old data keys). Creates nothing. With
    ``DEPTBOT_DATABASE_URL`` the keys are read from PostgreSQL once ``database`` (the
    database check's result, computed when not given) says it is reachable and migrated."""
    from bot.governance import keys as mk
    from bot.governance.vault import FILE, Vault
    from bot.store.backend import Database, PoolLimits, database_url

    try:
        keys = mk.load(settings.env, mk.configured_file(settings.section("privacy")))
    except ConfigError as exc:
        return [exc], []
    warnings = [BUILTIN_WARNING] if keys.is_builtin else []
    where: Path | str = settings.state_dir / FILE
    try:
        url = database_url(settings.env)
    except ConfigError:
        return [], warnings  # the database check reports the setting itself
    db: Database | None = None
    if url is not None:  # the replicas' shared key table, read on a pool that migrates nothing
        from bot.store.pg_health import check_settings
        from bot.store.pg_keys import PgKeyTable

        if database is None:
            database = check_settings(settings)
        if database is None or not database.ok:
            return [], warnings  # reported by the database check
        where = f"{url.redacted} (subject_keys)"
        db = Database(url, PoolLimits(min_size=1, max_size=1))
    elif not (settings.state_dir / FILE).is_file():
        return [], warnings
    try:
        vault = Vault(keys=keys, table=PgKeyTable(db)) if db else Vault.in_state_dir(settings.state_dir, keys)
        try:
            status, missing = vault.status(), vault.missing_master_keys()
        finally:
            vault.close()
    except DeptbotError as exc:
        return [ConfigError(exc.user_message, file=where, field="keys")], warnings
    finally:
        if db is not None:
            db.close()
    problems = [
        ConfigError(
            f"{n} data key(s) are wrapped with master key {kid}, which is not configured: that "
            f"text cannot be read (set {mk.ENV_VAR} or {mk.SETTING} to it)",
            file=where,
            field="keys",
        )
        for kid, n in missing.items()
    ]
    old = {k: n for k, n in status.by_master.items() if k != keys.current.id and k not in missing}
    if old and not keys.is_builtin:
        total = sum(old.values())
        warnings.append(
            f"warning: {total} data key(s) still wrapped with an older master key; run `deptbot keys rotate`"
        )
    return problems, warnings
