"""Opening the zips Office files and EPUBs are, without trusting them.

Every .docx, .pptx, .xlsx and .epub is a zip, and a zip is where a small file hides a huge one:
a 40 KB entry can inflate to gigabytes (a zip bomb). `open_zip` refuses, with a one-line reason,
what is not a zip (a password-protected Office file is an OLE2 container; a ".docx" may really
be text or HTML), a corrupt zip, too many entries, and entries whose declared sizes add up past
`LoadOptions.max_unzipped_bytes`, before anything is inflated. `read_entry` then inflates an entry
in pieces and stops at its declared size or the limit, whichever is smaller, so a header that lies
about its size gains nothing. The parsing libraries (python-docx, python-pptx, openpyxl) read
through zipfile too, which never yields more than an entry's declared size, so once `open_zip`
has passed a file their reads are bounded by the same check.
"""
from __future__ import annotations

import io
import zipfile

from ingest.errors import LoadError
from ingest.loaders.base import LoadOptions
from ingest.loaders.common import short_exc

MAX_ENTRIES = 10_000
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_PIECE = 1 << 16
_MACRO_PARTS = ("vbaproject.bin",)


def _a(what: str) -> str:
    """`what` with its article: "a Word document", "an EPUB"."""
    return f"{'an' if what[:1] in 'AEIOU' else 'a'} {what}"


def _not_a_zip(data: bytes, what: str) -> LoadError:
    """The reason a file that is not a zip cannot be `what`."""
    if data.startswith(_OLE2_MAGIC):
        if "EncryptedPackage".encode("utf-16-le") in data:
            return LoadError(f"password-protected {what}: save a copy without the password")
        return LoadError(f"not {_a(what)}: an older binary Office file (.doc/.xls/.ppt); "
                         "save it in the current format")
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return LoadError(f"not {_a(what)}: the file is HTML; rename it to .html")
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return LoadError(f"not {_a(what)} (not a zip file)")
    return LoadError(f"not {_a(what)}: the file is plain text; rename it to .txt")


def open_zip(data: bytes, what: str, options: LoadOptions) -> zipfile.ZipFile:
    """The zip in `data`, checked: LoadError if it is not one, is damaged, holds macros, or
    would inflate past the limit. `what` names the format in reasons ("Word document")."""
    if not data.startswith(b"PK"):
        raise _not_a_zip(data, what)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise LoadError(f"corrupt {what} (damaged zip: {short_exc(exc, 60)})") from exc
    if len(entries) > MAX_ENTRIES:
        raise LoadError(f"{what} has {len(entries):,} zip entries (the limit is {MAX_ENTRIES:,})")
    declared = sum(entry.file_size for entry in entries)
    if declared > options.max_unzipped_bytes:
        raise LoadError(f"{what} would inflate to {declared:,} bytes, over the "
                        f"{options.max_unzipped_bytes:,}-byte limit (RAG_MAX_UNZIPPED_BYTES)")
    if any(entry.flag_bits & 0x1 for entry in entries):
        raise LoadError(f"password-protected {what} (encrypted zip entries)")
    if any(entry.filename.lower().rsplit("/", 1)[-1] in _MACRO_PARTS for entry in entries):
        raise LoadError(f"{what} holds macros (vbaProject.bin): macro-enabled files are not "
                        "indexed; save a copy without macros")
    return archive


def read_entry(archive: zipfile.ZipFile, name: str, options: LoadOptions) -> bytes:
    """One entry's bytes, inflated in pieces and never past its declared size or the limit."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise LoadError(f"zip entry '{name}' is missing") from None
    limit = min(info.file_size, options.max_unzipped_bytes)
    out = bytearray()
    try:
        with archive.open(info) as stream:
            while piece := stream.read(_PIECE):
                out += piece
                if len(out) > limit:
                    raise LoadError(f"zip entry '{name}' inflates past its declared size")
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise LoadError(f"damaged zip entry '{name}': {short_exc(exc, 60)}") from exc
    return bytes(out)


def check_inflation(archive: zipfile.ZipFile, options: LoadOptions) -> None:
    """Inflate every entry once, in pieces, to prove the declared sizes and checksums true
    before a library parses the file (a lying header fails here, not inside the library)."""
    for info in archive.infolist():
        if not info.is_dir():
            read_entry(archive, info.filename, options)
