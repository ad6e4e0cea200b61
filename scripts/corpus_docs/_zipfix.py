"""Make a written Office file byte-identical across runs: fixed zip timestamps, original order."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

FIXED = (1980, 1, 1, 0, 0, 0)


def write_fixed(data: bytes, target: Path) -> None:
    """Rewrite the zip in `data` to `target` with every entry's date set to FIXED."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dest:
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dest.writestr(fixed, source.read(info))
    target.write_bytes(out.getvalue())


def save_office(document, target: Path, author: str, title: str, when) -> None:
    """Save a python-docx or python-pptx document with fixed properties and zip dates."""
    props = document.core_properties
    props.author = props.last_modified_by = author
    props.title = title
    props.created = props.modified = props.last_printed = when
    props.revision = 1
    out = io.BytesIO()
    document.save(out)
    write_fixed(out.getvalue(), target)
