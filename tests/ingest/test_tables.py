"""Tests for ingest.loaders.tables: rows as "Header: value" lines, the header repeated."""
from __future__ import annotations

import pytest

from ingest.errors import LoadError
from ingest.loaders.tables import clean_cell, row_lines


def test_each_row_names_its_cells_by_the_header() -> None:
    rows = [["Plan", "Price", "Seats"], ["Pro", 20, 5], ["Team", 9.0, 50]]
    assert row_lines(rows) == ["Plan: Pro | Price: 20 | Seats: 5",
                               "Plan: Team | Price: 9 | Seats: 50"]


def test_empty_rows_cells_and_columns_are_left_out() -> None:
    rows = [[None, None], ["Plan", "Note", "Spare"], [None, "", None],
            ["Pro", None, None], ["Team", "annual only", ""]]
    assert row_lines(rows) == ["Plan: Pro", "Plan: Team | Note: annual only"]


def test_a_blank_header_is_named_by_its_position() -> None:
    assert row_lines([["Plan", ""], ["Pro", "yes"]]) == ["Plan: Pro | column 2: yes"]
    assert row_lines([["Plan"], ["Pro", "extra"]]) == ["Plan: Pro | column 2: extra"]


def test_one_row_is_its_own_text_and_no_rows_is_nothing() -> None:
    assert row_lines([["Kestrelbook", None, "3.4"]]) == ["Kestrelbook | 3.4"]
    assert row_lines([[None], []]) == []


def test_cells_are_put_on_one_line() -> None:
    assert clean_cell(" two\nlines\t here ") == "two lines here"
    assert clean_cell(None) == "" and clean_cell(3.0) == "3" and clean_cell(2.5) == "2.5"


def test_the_cell_cap_counts_non_empty_cells() -> None:
    rows = [["a", "b"], ["1", None], ["2", "3"]]
    assert len(row_lines(rows, max_cells=5)) == 2
    with pytest.raises(LoadError, match="over 4 non-empty cells"):
        row_lines(rows, max_cells=4)
