"""Tests for the .csv / .tsv loader: sniffed dialects, detected encodings, header-named rows."""
from __future__ import annotations

import pytest

from ingest.loaders import LoadOptions
from tests.ingest.loader_checks import assert_exact_spans, loaded, refusal


@pytest.mark.parametrize("name, data", [
    ("comma.csv", b"Plan,Price\nPro,20\nTeam,9\n"),
    ("semicolon.csv", b"Plan;Price\r\nPro;20\r\nTeam;9\r\n"),
    ("tabs.tsv", b"Plan\tPrice\nPro\t20\nTeam\t9\n"),
    ("pipes.csv", b"Plan|Price\nPro|20\nTeam|9\n"),
    ("bom.csv", "\ufeffPlan,Price\nPro,20\nTeam,9\n".encode("utf-8")),
    ("utf16.csv", "Plan,Price\nPro,20\nTeam,9\n".encode("utf-16")),
])
def test_dialects_and_encodings(name, data):
    doc = loaded(name, data)
    assert doc.kind == "csv" and doc.text == "Plan: Pro | Price: 20\nPlan: Team | Price: 9"
    assert doc.sections[0].heading == () and doc.sections[0].page is None


def test_quoted_fields_keep_their_commas_and_newlines_on_one_line():
    data = b'Name,Note\n"Okta","SCIM, groups"\n"Slack","line one\nline two"\n'
    assert loaded("q.csv", data).text == ("Name: Okta | Note: SCIM, groups\n"
                                          "Name: Slack | Note: line one line two")


def test_windows_1252_is_detected():
    assert loaded("w.csv", "City,Café\nGalway,oui\n".encode("cp1252")).text == \
        "City: Galway | Café: oui"


def test_empty_rows_and_columns_are_skipped_and_spans_are_exact():
    rows = ["Plan,,Seats"] + [f"P{i},,{i}" for i in range(200)] + [",,", ""]
    doc = loaded("many.csv", "\n".join(rows))
    assert doc.text.splitlines()[0] == "Plan: P0 | Seats: 0" and len(doc.text.splitlines()) == 200
    assert_exact_spans(doc)


def test_refusals():
    assert refusal("none.csv", b",,\n,,\n") == "CSV file has no rows"
    assert refusal("bin.csv", b"a,b\x00\x01\x02") .startswith(("binary", "undecodable"))
    data = b"a,b\n" + b"1,2\n" * 10
    assert "RAG_MAX_SHEET_CELLS" in refusal("cap.csv", data, LoadOptions(max_sheet_cells=15))
    huge = b"a\n\"" + b"x" * 1_100_000 + b"\"\n"
    assert "not a table" in refusal("huge.csv", huge)
