"""A collection's corpus folder as the API writes it: names a client sent, checked; files
written atomically; files removed. No HTTP here (the routes turn these errors into statuses).

A client's name is never trusted. `check_name` refuses anything that could mean another file
than the one it spells (`..`, absolute paths, backslashes, names that NFC or percent-decoding
would change), anything the corpus scan would never index (hidden names, editor temporaries,
unsupported types: accepting them would store a file nobody can ask about), and `resolve_inside`
refuses any path that passes through a symbolic link, so a link planted in the corpus cannot
carry a write, a delete or a download outside it. Links are refused outright, even those that
point inside: one rule is easier to trust than a rule about where a link leads.

Writes go to a hidden temporary in the target's own folder (the scan and the watcher ignore
hidden names, so a half-written file is never indexed), are fsynced, then take their name in
one step: `os.link` when the name must be new (it fails if the name exists, so of two racing
uploads exactly one wins), `os.replace` when it may be overwritten. A filesystem without hard
links (some network or FAT mounts) cannot take uploads without overwrite; POSIX ones can.
"""
from __future__ import annotations

import os
import re
import secrets
import stat
import time
import unicodedata
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from ingest.errors import LoadError
from ingest.loaders import check_supported
from ingest.scan import is_ignored_name

TEMP_PREFIX, TEMP_SUFFIX = ".upload-", ".part"  # hidden: never scanned, never watched
MAX_PART_BYTES, MAX_NAME_BYTES = 255, 1024  # NAME_MAX and a sane total (PATH_MAX is 4096)
_CHUNK = 1 << 20
# Characters that make a name show as another one (on the page, in Content-Disposition):
# controls, line and paragraph separators, private-use and unassigned code points, and the
# direction overrides and isolates ("x\u202efdp.md" shows as "xdm.pdf"). Other format
# characters stay: the zero-width non-joiner is part of Persian words.
_INVISIBLE = frozenset({"Cc", "Zl", "Zp", "Co", "Cn", "Cs"})
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_DRIVE = re.compile(r"^[A-Za-z]:")  # `C:x`, `C:/x`: a Windows drive, absolute or not


class CorpusFileError(Exception):
    """Base of the errors below; each message is one line, safe to show the client."""


class BadName(CorpusFileError, ValueError):
    """The name cannot be used as a corpus path (the message says why)."""


class TooLarge(CorpusFileError):
    """The content is over the size limit; nothing was written."""


class Exists(CorpusFileError):
    """The path exists and overwriting was not asked for; nothing was written."""


class Missing(CorpusFileError):
    """There is no such file."""


def check_name(name: str) -> PurePosixPath:
    """The corpus-relative path `name` spells, or BadName with the reason. `name` is what the
    client sent (an upload's filename, or a URL path that Starlette has percent-decoded once):
    it is accepted only if it means exactly itself."""
    if not name:
        raise BadName("the name is empty")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadName("the name is not valid Unicode (it holds a lone surrogate)") from None
    if any(unicodedata.category(c) in _INVISIBLE or c in _BIDI for c in name):
        raise BadName("the name holds a control, direction, line-separator or unassigned "
                      "character")
    if "\\" in name:
        raise BadName("the name holds a backslash: use / between folders")
    if name.startswith("/") or _DRIVE.match(name):
        raise BadName("the name is an absolute path: give it relative to the collection")
    if urllib.parse.unquote(name) != name:
        raise BadName("the name holds percent-encoding: send the name itself")
    if unicodedata.normalize("NFC", name) != name:
        raise BadName("the name is not in Unicode NFC form: normalise it first")
    if size > MAX_NAME_BYTES:
        raise BadName(f"the name is over {MAX_NAME_BYTES} bytes")
    parts = name.split("/")
    for part in parts:
        _check_part(part)
    if is_ignored_name(parts[-1]):
        raise BadName("the name is one of an editor's or a download's temporary files, "
                      "which are never indexed")
    try:
        check_supported(PurePosixPath(name))
    except LoadError as exc:
        raise BadName(str(exc)) from None
    return PurePosixPath(name)


def _check_part(part: str) -> None:
    if part in ("", ".", ".."):
        raise BadName(f"the name has an empty, '.' or '..' part ({part!r})")
    if part.startswith("."):
        raise BadName(f"the name has a hidden part ({part!r}), which is never indexed")
    if len(part.encode()) > MAX_PART_BYTES:
        raise BadName(f"a part of the name is over {MAX_PART_BYTES} bytes")


def resolve_inside(root: Path, rel: PurePosixPath, *, for_write: bool) -> Path:
    """The absolute path of `rel` (from check_name) under `root`, refused (BadName) if any
    existing part of it is a symbolic link or not a folder where one is needed, or if it
    would end outside root. `for_write`: missing folders are created (each one checked
    again once made, so a link swapped in meanwhile is caught) and an existing target must
    be a regular file."""
    base = Path(os.path.realpath(root))  # root itself may be a link: it is the operator's
    path = base
    parts = rel.parts
    for i, part in enumerate(parts):
        path = path / part
        last = i == len(parts) - 1
        st = _lstat(path)
        if st is None and for_write and not last:
            try:
                os.mkdir(path)
            except FileExistsError:
                pass
            st = _lstat(path)
        if st is None:
            break  # missing from here on (reads: the caller finds no file)
        if stat.S_ISLNK(st.st_mode):
            raise BadName("the path passes through a symbolic link")
        if not last and not stat.S_ISDIR(st.st_mode):
            raise BadName(f"{'/'.join(parts[:i + 1])} is a file, not a folder")
        if last and for_write and not stat.S_ISREG(st.st_mode):
            raise BadName("the path is a folder or a special file, not a document")
    full = base.joinpath(*parts)
    if os.path.commonpath([os.path.realpath(full), str(base)]) != str(base):
        raise BadName("the path leaves the collection's folder")
    return full


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def write_atomically(root: Path, rel: PurePosixPath, source: BinaryIO, *, overwrite: bool,
                     max_bytes: int) -> Literal["added", "replaced"]:
    """Copy `source` to `rel` under root, all or nothing: "added" for a new file, "replaced"
    for one overwritten (only with `overwrite`; otherwise Exists). TooLarge past `max_bytes`.
    Whatever fails, no temporary is left behind and the target is as it was."""
    final = resolve_inside(root, rel, for_write=True)
    tmp = final.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
    try:
        _copy(source, tmp, max_bytes)
        try:
            os.link(tmp, final)  # atomic, and fails if the name exists: one racer wins
            outcome: Literal["added", "replaced"] = "added"
        except FileExistsError:
            if not overwrite:
                raise Exists(f"{rel} exists: send overwrite=true to replace it") from None
            resolve_inside(root, rel, for_write=True)  # still a regular file, not a link
            os.replace(tmp, final)
            outcome = "replaced"
        _fsync_folder(final.parent)
        return outcome
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass  # os.replace took it


def _copy(source: BinaryIO, tmp: Path, max_bytes: int) -> None:
    """`source` into a new file `tmp` (never an existing one, never through a link), synced."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    with os.fdopen(fd, "wb") as out:
        written = 0
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            check_size(written, max_bytes)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def check_size(size: int, max_bytes: int) -> None:
    """TooLarge when `size` bytes are over the per-file limit."""
    if size > max_bytes:
        raise TooLarge(f"the file is over the {max_bytes:,}-byte limit (RAG_MAX_FILE_BYTES)")


def remove(root: Path, rel: PurePosixPath) -> None:
    """Delete the regular file `rel` under root (Missing if there is none; BadName for a path
    through a link). Emptied folders stay: removing them could pull a folder from under an
    upload that is writing into it."""
    path = resolve_inside(root, rel, for_write=False)
    st = _lstat(path)
    if st is None or not stat.S_ISREG(st.st_mode):
        raise Missing(f"{rel} is not in the collection")
    try:
        os.unlink(path)
    except FileNotFoundError:
        raise Missing(f"{rel} is not in the collection") from None
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a name's creation or removal durable (the file's own fsync does not cover it)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sweep_temporaries(root: Path, older_than_s: float = 3600) -> int:
    """Remove the temporaries of uploads a killed process left behind (hidden, so nothing
    else ever would), if older than `older_than_s` (a live upload's is younger). Links are
    not followed: only the collection's own folders are swept. Returns how many went."""
    removed = 0
    cutoff = time.time() - older_than_s
    for folder, _, files in os.walk(root):
        for name in files:
            if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
                continue
            path = Path(folder, name)
            try:
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:
                continue  # gone meanwhile, or not ours to remove: the next start tries again
    return removed
