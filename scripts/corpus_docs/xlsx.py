"""The starter workbook: Kestrelbook's implementation partners and Kestrelbook's training courses, two sheets."""
from __future__ import annotations

import datetime as dt
import io
import re
import sys
import zipfile
from pathlib import Path

from openpyxl import Workbook

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _zipfix import write_fixed  # noqa: E402

FIXED = dt.datetime(2026, 1, 1)
PARTNERS = [
    ("Partner", "Country", "Speciality", "Certified consultants"),
    ("Bramblecote Digital", "Ireland", "moving wikis from Confluence", 9),
    ("Vela & Ortiz", "Spain", "workspace design", 5),
    ("Northpaw Consulting", "Canada", "SSO and SCIM roll-outs", 7),
    ("Kiwi Lattice", "New Zealand", "training for large teams", 3),
]
COURSES = [
    ("Course", "Length", "Format", "Price per person"),
    ("Kestrelbook Foundations", "2 hours", "live online", "free"),
    ("Workspace Architect", "1 day", "live online", "$290"),
    ("Migration Clinic", "3 half-days", "on site", "$1,150"),
    ("Admin Certification", "2 days", "on site", "$1,480"),
]


def build(target: Path) -> None:
    book = Workbook()
    partners = book.active
    partners.title = "Implementation partners"
    for row in PARTNERS:
        partners.append(row)
    courses = book.create_sheet("Training courses")
    for row in COURSES:
        courses.append(row)
    book.properties.created = book.properties.modified = FIXED
    book.properties.creator = "Kestrelbook"
    out = io.BytesIO()
    book.save(out)
    write_fixed(_fixed_core(out.getvalue()), target)


def _fixed_core(data: bytes) -> bytes:
    """openpyxl stamps docProps/core.xml's modified time with the clock at save: fix it."""
    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dest:
        for info in source.infolist():
            body = source.read(info)
            if info.filename == "docProps/core.xml":
                body = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2026-01-01T00:00:00Z",
                              body)
            dest.writestr(info, body)
    return out.getvalue()
