"""Bytes to text for the text-based formats: BOM, then UTF-8, then Windows-1252, then Latin-1."""
from __future__ import annotations

import codecs
import re

from ingest.errors import LoadError
from ingest.loaders.common import normalize_newlines

# Longest BOMs first: the UTF-32 LE BOM starts with the UTF-16 LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Control characters (Unicode category Cc) other than tab, newline, carriage return, form feed.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
MAX_CONTROL_RATIO = 0.01


def bom_encoding(data: bytes) -> tuple[str, int] | None:
    """The (encoding, BOM length) the data's byte-order mark names, or None without a BOM."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None


def _decode_guessing(data: bytes, declared: str | None) -> str:
    found = bom_encoding(data)
    if found is not None:
        encoding, skip = found
        try:
            return data[skip:].decode(encoding)
        except UnicodeDecodeError:
            raise LoadError(f"invalid {encoding.upper()} text after its byte-order mark") from None
    if b"\x00" in data:
        raise LoadError("binary content under a text extension")
    for encoding in (declared, "utf-8", "cp1252"):
        if encoding is None:
            continue
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1")  # never fails: every byte is a code point


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Decode a text file's bytes and normalise its newlines to "\\n".

    A BOM decides the encoding; otherwise `declared` (e.g. an HTML meta charset) is tried, then
    strict UTF-8, then Windows-1252, then Latin-1. Raises LoadError for binary content (NUL
    bytes, or more than 1% control characters), an empty file or a whitespace-only file.
    """
    if not data:
        raise LoadError("empty file")
    text = _decode_guessing(data, declared)
    if text:
        controls = len(_CONTROLS.findall(text))
        if controls > MAX_CONTROL_RATIO * len(text):
            raise LoadError("undecodable or binary content under a text extension")
    text = normalize_newlines(text)
    if not text:
        raise LoadError("empty file")
    if text.isspace():
        raise LoadError("file has only whitespace")
    return text
