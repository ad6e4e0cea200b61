"""Tests for the .xlsx loader: a section per sheet, header-named rows, values never formulas,
the cell cap, and the files it refuses."""
from __future__ import annotations

import io
import re
import zipfile

import pytest
from openpyxl import Workbook

from ingest.loaders import LoadOptions
from tests.ingest.loader_checks import assert_exact_spans, loaded, refusal


def workbook(**sheets: list[tuple]) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def edit(data: bytes, name: str, change) -> bytes:
    """The zip with one entry's bytes changed."""
    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dest:
        for info in source.infolist():
            body = source.read(info)
            dest.writestr(info, change(body) if info.filename == name else body)
    return out.getvalue()


def test_a_section_per_sheet_and_rows_named_by_the_header():
    data = workbook(Plans=[("Plan", "Price", None), (None, None, None), ("Pro", 20, None),
                           ("Team", 9.5, None)],
                    Empty=[], Regions=[("Region", "City"), ("eu-north", "Tampere")])
    doc = loaded("book.xlsx", data)
    assert doc.kind == "xlsx"
    assert [s.heading for s in doc.sections] == [("Plans",), ("Regions",)]
    assert [doc.text[s.start:s.end] for s in doc.sections] == [
        "Plan: Pro | Price: 20\nPlan: Team | Price: 9.5", "Region: eu-north | City: Tampere"]
    assert_exact_spans(doc)


def test_a_cell_gives_its_saved_value_never_its_formula():
    data = workbook(S=[("Item", "Total"), ("north", "=1+1")])
    assert "=1+1" not in loaded("f.xlsx", data).text  # never calculated: no value
    cached = edit(data, "xl/worksheets/sheet1.xml",
                  lambda b: re.sub(rb"<f>1\+1</f>(<v>\s*</v>)?", b"<f>1+1</f><v>2</v>", b))
    assert loaded("f.xlsx", cached).text == "Item: north | Total: 2"


def test_dates_are_iso():
    import datetime as dt
    data = workbook(S=[("Event", "When"), ("launch", dt.datetime(2026, 3, 4)),
                       ("review", dt.datetime(2026, 3, 5, 14, 30))])
    assert loaded("d.xlsx", data).text == ("Event: launch | When: 2026-03-04\n"
                                           "Event: review | When: 2026-03-05 14:30:00")


def test_the_cell_cap_refuses_the_file_with_the_setting_named():
    data = workbook(S=[tuple(f"c{r}{c}" for c in range(4)) for r in range(4)])
    assert len(loaded("ok.xlsx", data, LoadOptions(max_sheet_cells=16)).sections) == 1
    reason = refusal("big.xlsx", data, LoadOptions(max_sheet_cells=10))
    assert reason == "spreadsheet has over 10 non-empty cells (RAG_MAX_SHEET_CELLS)"


def test_a_huge_declared_dimension_costs_nothing():
    """A small file claiming A1:XFD1048576 must not be padded out to its claim."""
    data = edit(workbook(S=[("a", "b"), ("1", "2")]), "xl/worksheets/sheet1.xml",
                lambda b: re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:XFD1048576"', b))
    assert loaded("dim.xlsx", data).text == "a: 1 | b: 2"


@pytest.mark.parametrize("name, data, reason", [
    ("bomb.xlsx", None, "would inflate to"),
    ("cut.xlsx", "truncated", "corrupt Excel workbook"),
    ("text.xlsx", b"Plan,Price\nPro,20\n", "not an Excel workbook: the file is plain text"),
    ("empty.xlsx", "empty", "spreadsheet has no cell values"),
    ("macro.xlsm", b"PK\x03\x04", "macro-enabled Office file ('.xlsm')"),
])
def test_bad_workbooks_are_refused_with_a_reason(name, data, reason):
    if data is None:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("xl/worksheets/sheet1.xml", b"\0" * 150_000_000)
        data = out.getvalue()
        assert len(data) < 1_000_000
    elif data == "truncated":
        data = workbook(S=[("a",), ("b",)])[:600]
    elif data == "empty":
        data = workbook(S=[])
    assert reason in refusal(name, data)
