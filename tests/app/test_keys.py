"""The keys file (app/access/keys.py): who a key is, what its role allows, the file read again
when it changes, and every entry it refuses."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from app.access.keys import KeyRing, Role, load_keys
from ingest.errors import SettingsError


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def keys_file(path: Path, *entries: tuple[str, str, list[str], str]) -> Path:
    path.write_text("".join(
        f'[[keys]]\nname = "{n}"\nsha256 = "{sha(k)}"\ncollections = {c!r}\nrole = "{r}"\n'
        .replace("'", '"') for n, k, c, r in entries), encoding="utf-8")
    return path


def test_each_key_is_its_principal_and_nothing_else(tmp_path):
    path = keys_file(tmp_path / "keys.toml", ("hr-reader", "k-hr", ["hr"], "read"),
                     ("all-writer", "k-all", ["*"], "write"))
    ring = KeyRing("k-admin", path)
    hr, writer, admin = (ring.identify([k.encode()]) for k in ("k-hr", "k-all", "k-admin"))
    assert (hr.name, hr.role, hr.collections) == ("hr-reader", Role.READ, frozenset({"hr"}))
    assert hr.reads("hr") and not hr.reads("eng")
    assert writer.role is Role.WRITE and writer.reads("eng") and writer.collections is None
    assert admin.name == "RAG_API_KEY" and admin.role is Role.ADMIN and admin.reads("x")
    assert ring.identify([b"k-hr "]) is None and ring.identify([sha("k-hr").encode()]) is None
    assert ring.identify([b"nope", b"k-all"]).name == "all-writer"
    assert ring.required and not KeyRing(None, None).required


def test_roles_allow_what_the_ones_below_allow():
    assert Role.ADMIN.allows(Role.WRITE) and Role.WRITE.allows(Role.READ)
    assert not Role.READ.allows(Role.WRITE) and not Role.WRITE.allows(Role.ADMIN)


def test_a_changed_file_is_read_again_and_a_broken_one_keeps_the_old_keys(tmp_path, caplog):
    path = keys_file(tmp_path / "keys.toml", ("a", "k-a", ["hr"], "read"))
    ring = KeyRing(None, path)
    assert ring.identify([b"k-a"]).name == "a" and ring.identify([b"k-b"]) is None
    keys_file(path, ("b", "k-b", ["hr"], "write"))  # a revoked, b added
    os.utime(path, ns=(1, 1))  # a different time, whatever the clock's resolution
    assert ring.identify([b"k-a"]) is None and ring.identify([b"k-b"]).role is Role.WRITE
    path.write_text("[[keys]\nbroken", encoding="utf-8")
    assert ring.identify([b"k-b"]).name == "b"  # still in force
    assert "the previous keys stay in force" in caplog.text
    path.unlink()
    assert ring.identify([b"k-b"]).name == "b"  # a file gone for a moment is no lock-out


@pytest.mark.parametrize("text,expected", [
    ('[[keys]]\nsha256 = "{h}"\ncollections = ["*"]\nrole = "read"\n', "needs name"),
    ('[[keys]]\nname = "a"\nsha256 = "abc"\ncollections = ["*"]\nrole = "read"\n',
     "64 hex digits"),
    ('[[keys]]\nname = "a"\nkey = "plain"\nsha256 = "{h}"\ncollections = ["*"]\n'
     'role = "read"\n', "unknown field 'key'"),
    ('[[keys]]\nname = "a"\nsha256 = "{h}"\ncollections = ["*"]\nrole = "owner"\n',
     "role must be read, write or admin"),
    ('[[keys]]\nname = "a"\nsha256 = "{h}"\ncollections = []\nrole = "read"\n',
     "collections must be a list"),
    ('[[keys]]\nname = "a"\nsha256 = "{h}"\ncollections = ["Bad Name"]\nrole = "read"\n',
     "collections must be a list"),
    ('[[keys]]\nname = "a"\nsha256 = "{h}"\ncollections = ["*"]\nrole = "read"\n'
     '[[keys]]\nname = "a"\nsha256 = "{h2}"\ncollections = ["*"]\nrole = "read"\n',
     "two keys are named 'a'"),
    ('[[keys]]\nname = "a"\nsha256 = "{h}"\ncollections = ["*"]\nrole = "read"\n'
     '[[keys]]\nname = "b"\nsha256 = "{h}"\ncollections = ["*"]\nrole = "read"\n',
     "have the same sha256"),
    ('keys = "x"\n', "[[keys]] tables"),
    ('[[keys]]\nname = "a"\nsha256 = "{h}"\ncollections = ["hr"]\nrole = "admin"\n',
     "an admin reaches every collection"),
    ('[[keys]]\nname = "a"\nsha256 = "{empty}"\ncollections = ["*"]\nrole = "read"\n',
     "the SHA-256 of an empty key"),
])
def test_a_bad_entry_is_refused_with_a_line_that_names_it(tmp_path, text, expected):
    path = tmp_path / "keys.toml"
    path.write_text(text.replace("{h}", sha("x")).replace("{h2}", sha("y"))
                    .replace("{empty}", sha("").upper()), encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_keys(path)
    assert expected in str(caught.value) and "keys.toml" in str(caught.value)


def test_a_missing_file_is_refused_at_start(tmp_path):
    with pytest.raises(SettingsError, match="RAG_KEYS_FILE: .* does not exist"):
        KeyRing(None, tmp_path / "none.toml")
