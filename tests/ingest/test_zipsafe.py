"""zipsafe itself: entry count limit, encrypted entries, read_entry's bound."""
from __future__ import annotations

import io
import zipfile

import pytest

from ingest.errors import LoadError
from ingest.loaders import zipsafe
from ingest.loaders.base import LoadOptions


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_too_many_entries(monkeypatch):
    monkeypatch.setattr(zipsafe, "MAX_ENTRIES", 5)
    data = _zip({f"e{i}.xml": b"x" for i in range(6)})
    with pytest.raises(LoadError, match="has 6 zip entries \\(the limit is 5\\)"):
        zipsafe.open_zip(data, "Word document", LoadOptions())
    assert zipsafe.open_zip(_zip({f"e{i}.xml": b"x" for i in range(5)}), "x", LoadOptions())


def test_encrypted_entry_flag():
    data = bytearray(_zip({"word/document.xml": b"<w/>"}))
    # set bit 0 (encrypted) of the general purpose flags in the local and central headers
    for sig, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(sig) + offset
        data[at] |= 0x1
    with pytest.raises(LoadError, match="password-protected Word document \\(encrypted zip"):
        zipsafe.open_zip(bytes(data), "Word document", LoadOptions())


def test_read_entry_stops_at_a_lying_declared_size():
    data = bytearray(_zip({"big.xml": b"a" * 100_000}))
    # declare 1,000 bytes in both headers: zipfile then stops at 1,000 and the CRC fails
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(sig) + offset
        data[at:at + 4] = (1000).to_bytes(4, "little")
    archive = zipsafe.open_zip(bytes(data), "Word document", LoadOptions())
    with pytest.raises(LoadError, match="damaged zip entry 'big.xml'"):
        zipsafe.read_entry(archive, "big.xml", LoadOptions())


def test_read_entry_bounded_by_the_limit():
    archive = zipfile.ZipFile(io.BytesIO(_zip({"big.xml": b"a" * 100_000})))
    with pytest.raises(LoadError, match="inflates past its declared size"):
        zipsafe.read_entry(archive, "big.xml", LoadOptions(max_unzipped_bytes=10_000))
    assert zipsafe.read_entry(archive, "big.xml", LoadOptions()) == b"a" * 100_000


def test_missing_entry():
    archive = zipsafe.open_zip(_zip({"a.xml": b"x"}), "x", LoadOptions())
    with pytest.raises(LoadError, match="zip entry 'b.xml' is missing"):
        zipsafe.read_entry(archive, "b.xml", LoadOptions())
