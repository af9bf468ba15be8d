"""The audit chain: an HMAC over every audit row and the row before it, so an UPDATE,
DELETE, INSERT or reordering done with SQL alone is caught by ``deptbot audit verify``.

``mac(n) = HMAC-SHA256(key, mac(n-1) || canonical(row n))``, stored as hex in
``row_hash`` (and ``mac(n-1)`` in ``prev_hash``). The first chained row follows
``GENESIS`` (32 zero bytes) or, after retention purged older rows, the MAC recorded in a
checkpoint. Anyone who can write the database but does not hold the key cannot make a
changed row verify; the key lives in the environment or a key file, never in the database.

Canonical content (why each choice):

- every column except the chain fields (``seq``, ``prev_hash``, ``row_hash``): the
  position is bound by the link to the previous MAC, so ``seq`` need not be in the MAC,
  and a genuine row moved elsewhere still verifies on its own, which lets ``verify`` tell
  "reordered" or "deleted" apart from "edited";
- NULL columns are left out, so a column added by a later migration (NULL in old rows)
  does not change the MAC of rows written before it existed;
- ``user`` is replaced by its pseudonym (``u-`` + 16 hex of an HMAC of the lower-cased
  e-mail), so a privacy erase may overwrite the e-mail with the pseudonym in place and the
  chain still verifies;
- sorted keys, no spaces, UTF-8: JSON any other tool can reproduce from an export.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import ConfigError

ENV_VAR = "DEPTBOT_AUDIT_KEY"
SETTING = "audit.key_file"
KEY_BYTES = 32
GENESIS = bytes(32)
CHAIN_FIELDS = frozenset({"seq", "prev_hash", "row_hash"})
_PSEUDONYM = re.compile(r"^u-[0-9a-f]{16}$")
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)  # built once


# ── the key ──────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class AuditKey:
    secret: bytes = field(repr=False)
    source: str  # "environment" | "file"
    file: Path | None = None

    def describe(self) -> str:
        return (
            f"{ENV_VAR} in the environment" if self.source == "environment" else f"the key file {self.file}"
        )


def _decode(text: str) -> bytes:
    """Hex first (what ``openssl rand -hex 32`` prints), then standard or URL-safe base64."""
    text = text.strip()
    if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text):
        return bytes.fromhex(text)
    try:
        return base64.b64decode(
            text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True
        )
    except (binascii.Error, ValueError):
        return b""


def load_key(env: Mapping[str, str], key_file: Path, *, create: bool = True) -> AuditKey:
    """The audit key: ``DEPTBOT_AUDIT_KEY`` (hex or base64, at least 16 bytes) when set,
    else ``key_file``, created with 32 random bytes (0600, folder 0700) on first use
    (unless ``create`` is False: verifying with a brand-new key would only say every row
    is forged). A malformed key is a ConfigError that never shows the key."""
    text = env.get(ENV_VAR, "")
    if text.strip():
        secret = _decode(text)
        if len(secret) < 16:
            raise ConfigError("must be at least 16 bytes written as hex or base64", file=ENV_VAR)
        return AuditKey(secret, "environment")
    key_file = Path(key_file)
    if not key_file.exists():
        if not create:
            raise ConfigError(
                f"the audit key file does not exist: set {ENV_VAR} or point the {SETTING} setting at the key "
                "the rows were written with",
                file=key_file,
            )
        _create_key_file(key_file)
    try:
        secret = _decode(key_file.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"the audit key file cannot be read (setting {SETTING})", file=key_file) from None
    if len(secret) < 16:
        raise ConfigError(f"the audit key file holds no valid key (setting {SETTING})", file=key_file)
    return AuditKey(secret, "file", key_file)


def _create_key_file(path: Path) -> None:
    """Write a new key beside ``path`` and hard-link it into place: two processes starting
    at once both end up reading the one key that won, never a half-written file."""
    from bot.store.state import ensure_private_dir

    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".audit-key-")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(KEY_BYTES) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another process won: use its key
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


# ── MACs ─────────────────────────────────────────────────────────────────────────────


def is_pseudonym(value: str) -> bool:
    return bool(_PSEUDONYM.match(value))


class Chain:
    """MACs and pseudonyms under one key. Pseudonyms are cached: users repeat."""

    def __init__(self, secret: bytes) -> None:
        self._base = hmac.new(secret, digestmod=hashlib.sha256)
        self._names: dict[str, str] = {}

    def pseudonym(self, email: str) -> str:
        """Stable per key, not reversible without it: ``u-`` + 16 hex digits."""
        if is_pseudonym(email):
            return email
        name = self._names.get(email)
        if name is None:
            h = self._base.copy()
            h.update(b"subject:" + email.lower().encode("utf-8"))
            name = "u-" + h.hexdigest()[:16]
            if len(self._names) > 100_000:
                self._names.clear()
            self._names[email] = name
        return name

    def canonical(self, row: Mapping[str, Any]) -> bytes:
        content = {k: v for k, v in row.items() if v is not None and k not in CHAIN_FIELDS}
        user = content.get("user")
        if isinstance(user, str):
            content["user"] = self.pseudonym(user)
        return _CANONICAL.encode(content).encode("utf-8")

    def mac(self, prev: bytes, row: Mapping[str, Any]) -> bytes:
        h = self._base.copy()
        h.update(prev)
        h.update(self.canonical(row))
        return h.digest()

    def sign_checkpoint(self, cp: Checkpoint) -> str:
        """The checkpoint's own MAC: without it, anyone could add a checkpoint matching an
        existing row's MAC and then delete every row before it unnoticed."""
        h = self._base.copy()
        h.update(f"checkpoint\0{cp.kind}\0{cp.seq}\0{cp.mac}\0{cp.count}\0{cp.time}".encode())
        return h.hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """The chain head at ``seq``: its MAC and how many chained rows lead to it.

    kind: ``start`` (where the chain begins: after the unchained legacy rows, or 0),
    ``purge`` (rows up to ``seq`` were deleted by retention), ``log`` (the daily head)."""

    seq: int
    mac: str
    count: int
    time: str
    kind: str = "log"
    sig: str = ""

    def line(self) -> str:
        """What to ship elsewhere (a SIEM, a ticket); ``verify --expect SEQ:MAC`` checks it."""
        return f"deptbot-audit-checkpoint seq={self.seq} mac={self.mac} count={self.count} time={self.time}"


# ── verification ─────────────────────────────────────────────────────────────────────


@dataclass
class Report:
    ok: bool = True
    rows: int = 0  # chained rows that verified
    legacy: int = 0  # rows written before the chain existed (not verifiable)
    first_seq: int | None = None
    head_seq: int = 0
    head_mac: str = GENESIS.hex()
    bad_seq: int | None = None
    problem: str = ""
    kind: str = ""  # edited | deleted | inserted | reordered | truncated | checkpoint
    notes: list[str] = field(default_factory=list)
    checkpoint: Checkpoint | None = None  # the head, to ship elsewhere (when ok)

    def fail(self, seq: int | None, kind: str, problem: str) -> Report:
        self.ok, self.bad_seq, self.kind, self.problem = False, seq, kind, problem
        return self


def _peek(rows: Iterable[Mapping[str, Any]]) -> Iterator[tuple[Mapping[str, Any], Mapping[str, Any] | None]]:
    it = iter(rows)
    cur = next(it, None)
    while cur is not None:
        nxt = next(it, None)
        yield cur, nxt
        cur = nxt


def verify_rows(
    chain: Chain,
    rows: Iterable[Mapping[str, Any]],
    *,
    legacy_through: int,
    start_seq: int,
    start_mac: bytes,
    later_with_mac: Callable[[str, int], int | None],
) -> Report:
    """Walk ``rows`` (ordered by seq) and stop at the first bad one.

    ``start_seq``/``start_mac``: the first chained row must be ``start_seq`` and follow
    ``start_mac`` (GENESIS, or the MAC of a purge checkpoint). Rows with
    ``seq <= legacy_through`` and no MAC are unchained legacy rows: counted, not checked.
    ``later_with_mac(mac_hex, seq)``: the seq of a row after ``seq`` whose MAC is
    ``mac_hex`` (only asked once something is already wrong, to name it).
    """
    rep = Report()
    prev, prev_hex, expect = start_mac, start_mac.hex(), start_seq
    for row, nxt in _peek(rows):
        seq = int(row["seq"])
        stored = row.get("row_hash")
        if seq <= legacy_through and not stored:
            rep.legacy += 1
            continue
        if seq < expect:
            return rep.fail(seq, "inserted", f"row {seq} sits before where the chain starts (seq {expect})")
        if seq > expect:
            return rep.fail(
                expect, "deleted", f"rows {expect}–{seq - 1} are missing (deleted, or a gap in the sequence)"
            )
        if not stored:
            return rep.fail(seq, "inserted", f"row {seq} has no MAC: it was not written by deptbot")
        stored_prev = row.get("prev_hash")
        linked = stored_prev == prev_hex
        if linked:
            got = chain.mac(prev, row)
        elif is_hex_mac(stored_prev):
            got = chain.mac(bytes.fromhex(str(stored_prev)), row)
        else:
            got = b""
        self_ok = hmac.compare_digest(got.hex(), str(stored)) if got else False
        if linked and self_ok:
            rep.rows += 1
            if rep.first_seq is None:
                rep.first_seq = seq
            prev, prev_hex, expect = got, str(stored), seq + 1
            rep.head_seq, rep.head_mac = seq, stored
            continue
        if linked:  # follows its predecessor, but its content no longer matches its MAC
            if nxt is not None and nxt.get("prev_hash") == row.get("prev_hash"):
                return rep.fail(
                    seq, "inserted", f"row {seq} was inserted: the next row follows the row before it"
                )
            return rep.fail(
                seq, "edited", f"row {seq} was edited after it was written (its MAC does not match)"
            )
        if self_ok:  # a genuine row in the wrong place
            later = later_with_mac(str(row.get("prev_hash")), seq)
            if later is not None:
                return rep.fail(seq, "reordered", f"row {seq} is out of order: it belongs after row {later}")
            return rep.fail(seq, "deleted", f"the row before row {seq} is missing (deleted and renumbered)")
        return rep.fail(
            seq, "inserted", f"row {seq} was inserted or forged: neither its link nor its MAC match"
        )
    return rep


_MAC = re.compile(r"[0-9a-f]{64}")


def is_hex_mac(value: Any) -> bool:
    return isinstance(value, str) and _MAC.fullmatch(value) is not None


def verify_export(chain: Chain, path: Path) -> Report:
    """Verify a ``deptbot audit export`` JSONL file with the key, offline.

    The file need not start at the beginning of the chain (``--since``, retention): its
    first chained row's ``prev_hash`` is taken as given and reported (``first_seq`` and
    ``notes``), so compare it with a checkpoint or the last MAC of the previous export.
    Leading rows without a MAC are legacy rows. A ``question`` field (``--with-text``) is
    not part of the chain and is ignored."""

    def rows() -> Iterator[dict[str, Any]]:
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    int(row["seq"])
                except (ValueError, KeyError, TypeError):
                    raise ValueError(f"line {n} is not an audit row") from None
                row.pop("question", None)
                yield row

    legacy, first = 0, None
    for row in rows():
        if row.get("row_hash"):
            first = row
            break
        legacy = int(row["seq"])
    if first is None:
        rep = Report(legacy=sum(1 for _ in rows()))
        return rep.fail(None, "inserted", "the file holds no chained row: nothing in it can be verified")
    anchor = first.get("prev_hash")
    if not is_hex_mac(anchor):
        return Report().fail(int(first["seq"]), "edited", f"row {first['seq']} has no valid prev_hash")

    def later(mac: str, seq: int) -> int | None:
        return next((int(r["seq"]) for r in rows() if int(r["seq"]) > seq and r.get("row_hash") == mac), None)

    rep = verify_rows(
        chain,
        rows(),
        legacy_through=legacy,
        start_seq=int(first["seq"]),
        start_mac=bytes.fromhex(str(anchor)),
        later_with_mac=later,
    )
    if rep.ok:
        rep.notes.append(
            f"the file starts at row {first['seq']}, after MAC {anchor} "
            "(compare it with a checkpoint or the previous export's last row)"
        )
    return rep
