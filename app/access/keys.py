"""Who a request is: the keys the service knows, and the role and collections each one has.

RAG_KEYS_FILE (TOML) holds the keys' SHA-256 hashes, never the keys:

    [[keys]]
    name = "hr-reader"                 # shown in logs, never the key
    sha256 = "<hex sha256 of the key>" # printf %s "$KEY" | sha256sum
    collections = ["hr"]               # or ["*"]
    role = "read"                      # read | write | admin

RAG_API_KEY, when set, is one more key: an admin of every collection. With neither setting the
service is open, as it was before keys: every request is an admin.

A changed file is read again on the next request (its size, time and inode are checked on
each one: a stat, a few microseconds). A file that no longer parses keeps the keys it had,
with an error in the log, rather than locking everyone out or letting everyone in.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ingest.collections import NAME_RULE, read_toml, valid_name
from ingest.errors import SettingsError

log = logging.getLogger("ragfirst.access")

_HEX = re.compile(r"[0-9a-f]{64}")
_ENTRY_KEYS = frozenset({"name", "sha256", "collections", "role"})
_EMPTY = hashlib.sha256(b"").hexdigest()


class Role(str, Enum):
    """What a key may do; each role may do what the ones before it may."""
    READ = "read"  # ask (every form), list, download
    WRITE = "write"  # also upload, delete, ingest
    ADMIN = "admin"  # everything, every collection, /metrics

    def allows(self, needed: "Role") -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class Principal:
    """The key a request was made with: its name (for logs), its role, its collections
    (None: all of them)."""
    name: str
    role: Role
    collections: frozenset[str] | None

    def reads(self, collection: str) -> bool:
        return (self.role is Role.ADMIN or self.collections is None
                or collection in self.collections)


OPEN = Principal("open", Role.ADMIN, None)  # no key configured: anyone may do anything


class KeyRing:
    """The keys (RAG_API_KEY and RAG_KEYS_FILE) and the matching of a request's keys."""

    def __init__(self, api_key: str | None, keys_file: Path | None) -> None:
        self._api = (Principal("RAG_API_KEY", Role.ADMIN, None), _digest(api_key.encode())) \
            if api_key else None
        self._file = keys_file
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._entries: list[tuple[Principal, bytes]] = []
        if keys_file is not None:
            self._stamp, self._entries = _stamp(keys_file), load_keys(keys_file)

    @property
    def required(self) -> bool:
        """Whether requests need a key at all."""
        return self._api is not None or self._file is not None

    def identify(self, presented: list[bytes]) -> Principal | None:
        """The principal of the first known key among `presented`, None when none is known.
        Every presented key is compared with every known hash, by compare_digest: the time
        taken does not tell which key, or which byte of a hash, differed."""
        entries = self._current()
        found = None
        for candidate in presented:
            digest = _digest(candidate)
            for principal, known in entries:
                if hmac.compare_digest(digest, known) and found is None:
                    found = principal
        return found

    def _current(self) -> list[tuple[Principal, bytes]]:
        if self._file is not None:
            with self._lock:
                self._reload_if_changed()  # replaces the list, never changes it in place
        return self._entries + ([self._api] if self._api else [])

    def _reload_if_changed(self) -> None:
        stamp = _stamp(self._file)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._entries = load_keys(self._file)
        except SettingsError as exc:
            log.error("the keys file changed but cannot be used; the previous keys stay in "
                      "force: %s", exc)
            return
        log.info("keys file read again: %d keys", len(self._entries))


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def _stamp(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def load_keys(path: Path) -> list[tuple[Principal, bytes]]:
    """The keys in the file, as (principal, SHA-256 digest); SettingsError (one line naming
    the file and the entry) for anything that cannot be used."""
    table = read_toml(path, "RAG_KEYS_FILE")
    entries = table.get("keys", [])
    if set(table) - {"keys"} or not isinstance(entries, list):
        raise SettingsError(f"{path}: keys are defined as [[keys]] tables, nothing else")
    keys = [_key_entry(path, i, entry) for i, entry in enumerate(entries)]
    names = [p.name for p, _ in keys]
    digests = [d for _, d in keys]
    for i in range(len(keys)):
        if names.index(names[i]) != i:
            raise SettingsError(f"{path}: two keys are named {names[i]!r}")
        if digests.index(digests[i]) != i:
            raise SettingsError(f"{path}: keys {names[digests.index(digests[i])]!r} and "
                                f"{names[i]!r} have the same sha256")
    return keys


def _key_entry(path: Path, i: int, entry: object) -> tuple[Principal, bytes]:
    where = f"{path}: key {i + 1}"
    if not isinstance(entry, dict):
        raise SettingsError(f"{where} must be a [[keys]] table")
    if isinstance(entry.get("name"), str) and entry["name"].strip():
        where = f"{path}: key {entry['name']!r}"
    else:
        raise SettingsError(f"{where} needs name = \"<a name for the logs>\"")
    extra = sorted(set(entry) - _ENTRY_KEYS)
    if extra:
        raise SettingsError(f"{where}: unknown field {extra[0]!r} (known: name, sha256, "
                            "collections, role)")
    sha = entry.get("sha256")
    if not isinstance(sha, str) or not _HEX.fullmatch(sha.lower()):
        raise SettingsError(f"{where}: sha256 must be the key's SHA-256 as 64 hex digits "
                            "(printf %s \"$KEY\" | sha256sum), never the key itself")
    if sha.lower() == _EMPTY:  # it would make every empty credential this key
        raise SettingsError(f"{where}: sha256 is the SHA-256 of an empty key (was KEY unset "
                            "when it was hashed?)")
    try:
        role = Role(entry.get("role"))
    except ValueError:
        raise SettingsError(f"{where}: role must be read, write or admin") from None
    collections = entry.get("collections")
    if not isinstance(collections, list) or not collections or not all(
            c == "*" or valid_name(c) for c in collections):
        raise SettingsError(f"{where}: collections must be a list of collection names "
                            f"({NAME_RULE}) or [\"*\"]")
    scope = None if "*" in collections else frozenset(collections)
    if role is Role.ADMIN and scope is not None:  # it would reach every collection regardless
        raise SettingsError(f"{where}: an admin reaches every collection: give it "
                            "collections = [\"*\"], or the write role for these ones")
    return Principal(entry["name"].strip(), role, scope), bytes.fromhex(sha.lower())
