"""The starter workbook: Kestrelbook's regional data centres and per-plan limits, two sheets."""
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
REGIONS = [
    ("Region", "City", "Opened", "Uptime SLA", "Nightly backup copy in"),
    ("eu-north", "Tampere", 2021, "99.95%", "eu-west"),
    ("eu-west", "Galway", 2019, "99.95%", "eu-north"),
    ("us-east", "Columbus", 2020, "99.9%", "us-west"),
    ("us-west", "Boise", 2023, "99.9%", "us-east"),
    ("ap-south", "Pune", 2025, "99.5%", "ap-southeast"),
    ("ap-southeast", "Auckland", 2026, "99.5%", "ap-south"),
]
LIMITS = [
    ("Plan", "Storage per seat", "API calls per day", "Page history kept"),
    ("Free", "2 GB", "1,000", "14 days"),
    ("Team", "25 GB", "40,000", "180 days"),
    ("Business", "120 GB", "250,000", "2 years"),
    ("Enterprise", "unlimited", "2,000,000", "unlimited"),
]


def build(target: Path) -> None:
    book = Workbook()
    regions = book.active
    regions.title = "Regions"
    for row in REGIONS:
        regions.append(row)
    limits = book.create_sheet("Limits")
    for row in LIMITS:
        limits.append(row)
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
