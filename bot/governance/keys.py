"""Master keys: where they come from, how they are named, how a key file is written.

The master key never encrypts personal text itself; it only wraps the per-person data
keys kept by ``bot.governance.vault``. So rotating it rewrites a few hundred bytes per
person, never the data, and losing one wrapped data key (crypto-shredding) loses exactly
one person's text.

Where the keys come from, first match wins:

1. ``DEPTBOT_MASTER_KEY`` in the environment: one or more keys, comma-separated;
2. the file named by the ``privacy.master_key_file`` setting: one key per line;
3. neither: the built-in default key, so a fresh install works offline. It is public (it
   is in this file), so it protects against nothing but casual reading; ``deptbot check``
   says so until ``deptbot keys init`` has been run.

In both sources the FIRST key is the current one (new data keys are wrapped with it); the
others are still accepted for unwrapping, so a rotation interrupted half way leaves every
data key readable (``deptbot keys rotate`` removes the old key once nothing uses it).
The built-in default is always accepted for unwrapping too: anyone can read it anyway, and
data keys written before ``keys init`` stay readable until a rotation re-wraps them.

A key is 32 random bytes written as URL-safe base64; it is named by its *key id*, the first
8 bytes of a SHA-256 of the key, so errors and ``deptbot keys status`` can say which key
is expected without ever showing one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.errors import ConfigError, StoreError

ENV_VAR = "DEPTBOT_MASTER_KEY"
SETTING = "privacy.master_key_file"
KEY_BYTES = 32

# Public on purpose (see the module docstring): only so that an unconfigured install works.
_BUILTIN = hashlib.sha256(b"deptbot built-in default master key; replace with `deptbot keys init`").digest()


def key_id(key: bytes) -> str:
    """Stable, non-secret name of a key (16 hex digits)."""
    return hashlib.sha256(b"deptbot-master-key-id\0" + key).hexdigest()[:16]


BUILTIN_ID = key_id(_BUILTIN)


@dataclass(frozen=True)
class MasterKey:
    id: str
    secret: bytes

    @classmethod
    def of(cls, secret: bytes) -> MasterKey:
        return cls(id=key_id(secret), secret=secret)

    def __repr__(self) -> str:  # never print a secret by accident
        return f"MasterKey(id={self.id!r})"


BUILTIN = MasterKey.of(_BUILTIN)


@dataclass(frozen=True)
class MasterKeys:
    """The configured keys, current first, plus where they came from (for messages)."""

    keys: tuple[MasterKey, ...]
    source: str  # "environment" | "file" | "built-in"
    file: Path | None = None

    @property
    def current(self) -> MasterKey:
        return self.keys[0]

    @property
    def is_builtin(self) -> bool:
        return self.current.id == BUILTIN_ID

    def find(self, kid: str) -> MasterKey | None:
        for k in (*self.keys, BUILTIN):
            if k.id == kid:
                return k
        return None

    def describe(self) -> str:
        if self.source == "environment":
            return f"{ENV_VAR} in the environment"
        if self.source == "file":
            return f"the key file {self.file}"
        return "the built-in default key"


def generate() -> str:
    """A new key, as written in a key file or in ``DEPTBOT_MASTER_KEY``."""
    return encode(secrets.token_bytes(KEY_BYTES))


def encode(secret: bytes) -> str:
    return base64.urlsafe_b64encode(secret).decode("ascii")


def decode(text: str, *, where: str) -> bytes:
    """One key from its base64 text; a ConfigError naming ``where`` (never the text)."""
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise ConfigError(
            f"a master key must be {KEY_BYTES} bytes in URL-safe base64 (deptbot keys init makes one)",
            file=where,
        )
    return raw


def parse(text: str, *, where: str, separator: str | None = None) -> tuple[MasterKey, ...]:
    """Keys from a key file (one per line, ``#`` comments) or the variable (comma-separated)."""
    parts = text.split(separator) if separator else text.splitlines()
    found = [p.strip() for p in parts if p.strip() and not p.strip().startswith("#")]
    if not found:
        raise ConfigError("holds no master key", file=where)
    return tuple(MasterKey.of(decode(p, where=where)) for p in found)


def configured_file(section: Mapping[str, object] | None) -> Path | None:
    """The ``privacy.master_key_file`` setting as a path (None when empty)."""
    value = str((section or {}).get("master_key_file") or "").strip()
    return Path(value).expanduser() if value else None


def load(env: Mapping[str, str], key_file: Path | None) -> MasterKeys:
    """The master keys in effect (see the module docstring for the order)."""
    text = env.get(ENV_VAR, "")
    if text.strip():
        return MasterKeys(parse(text, where=ENV_VAR, separator=","), "environment")
    if key_file is not None:
        try:
            content = key_file.read_text(encoding="ascii")
        except FileNotFoundError:
            raise ConfigError(
                f"the master key file does not exist (create it with `deptbot keys init`; setting {SETTING})",
                file=key_file,
            ) from None
        except (OSError, UnicodeDecodeError):
            raise ConfigError(
                f"the master key file cannot be read (setting {SETTING})", file=key_file
            ) from None
        return MasterKeys(parse(content, where=str(key_file)), "file", key_file)
    return MasterKeys((BUILTIN,), "built-in")


def write_new_file(path: Path, keys: Sequence[str]) -> None:
    """Create ``path`` (0600) holding ``keys``; refuses to replace an existing file, since
    that would make every data key wrapped with the old key unreadable."""
    from bot.store.state import ensure_private_dir

    ensure_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise StoreError(
            f"{path} already exists; deptbot never overwrites a master key (use `deptbot keys rotate`)."
        ) from None
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(_file_text(keys))
        fh.flush()
        os.fsync(fh.fileno())


def replace_file(path: Path, keys: Sequence[str]) -> None:
    """Atomically replace the key file: a new 0600 sibling (``mkstemp``, never a reused
    name whose mode could be wider), fsynced, renamed over it."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(_file_text(keys))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _file_text(keys: Sequence[str]) -> str:
    head = (
        "# deptbot master key(s): the first line is current; later lines are old keys still\n"
        "# accepted until `deptbot keys rotate` finishes. Keep this file secret and backed up.\n"
    )
    return head + "".join(k + "\n" for k in keys)
