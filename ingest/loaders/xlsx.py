"""Excel workbooks (.xlsx): one section per sheet, one line per row, the header repeated.

openpyxl reads the workbook in read-only mode (it streams each sheet's XML) with
`data_only=True`: a cell's value as Excel last saved it, never its formula (a formula cell never
calculated gives nothing). Every worksheet is read, hidden ones too: hiding a sheet tidies a
workbook, it does not make it secret, and a search that missed its facts would be wrong. Chart
sheets hold no cells and are skipped. The first non-empty row of a sheet is its header;
tables.row_lines says why each row repeats it. Non-empty cells are counted over the whole file
against `LoadOptions.max_sheet_cells`.
"""
from __future__ import annotations

import datetime as dt
import io
import warnings

from ingest.errors import LoadError
from ingest.loaders import zipsafe
from ingest.loaders.base import LoadedDocument, LoadOptions
from ingest.loaders.common import build_sections, normalize_newlines
from ingest.loaders.tables import row_lines

WHAT = "Excel workbook"


def _value(value: object) -> object:
    """Dates as ISO text (the date alone at midnight); anything else as it is."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, str):
        return normalize_newlines(value)
    return value


class _Budget:
    """The non-empty cells a file may still hold."""

    def __init__(self, cells: int) -> None:
        self.cap = self.left = cells

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise LoadError(f"spreadsheet has over {self.cap:,} non-empty cells "
                            "(RAG_MAX_SHEET_CELLS)")


def _rows(sheet, budget: _Budget):
    """A sheet's rows as lists of values, each cut after its last non-empty cell.

    The sheet's declared dimensions are dropped first: read-only openpyxl pads every row out
    to them, and a small file declaring A1:XFD1048576 would yield a billion empty cells."""
    sheet.reset_dimensions()
    for row in sheet.iter_rows():
        values = [None if getattr(c, "value", None) in (None, "") else _value(c.value)
                  for c in row]
        while values and values[-1] is None:
            values.pop()
        budget.take(sum(1 for v in values if v is not None))
        yield values


def load_xlsx(data: bytes, options: LoadOptions = LoadOptions()) -> LoadedDocument:
    archive = zipsafe.open_zip(data, WHAT, options)
    zipsafe.check_inflation(archive, options)
    from openpyxl import load_workbook  # imported here: only spreadsheets pay for it

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns of every extension it ignores
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        raise LoadError(f"corrupt {WHAT} ({type(exc).__name__})") from exc
    parts: list[str] = []
    marks: list[tuple[int, tuple[str, ...], int | None]] = []
    offset, budget = 0, _Budget(options.max_sheet_cells)
    try:
        for sheet in book.worksheets:
            lines = row_lines(_rows(sheet, budget))
            if not lines:
                continue
            body = "\n".join(lines)
            marks.append((offset, (sheet.title,), None))
            parts.append(body)
            offset += len(body) + 2
    finally:
        book.close()
    if not parts:
        raise LoadError("spreadsheet has no cell values")
    text = "\n\n".join(parts)
    return LoadedDocument(text=text, sections=build_sections(text, marks), kind="xlsx")
