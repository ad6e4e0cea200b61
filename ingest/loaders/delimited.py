"""CSV and TSV files: one line per row, each cell named by its column's header.

The bytes are decoded as the text loader decodes them (BOM, UTF-8, Windows-1252...); the
dialect (comma, semicolon, tab, pipe; the quote character) is sniffed from the first rows, a
.tsv defaulting to tabs. The first non-empty row is the header (tables.row_lines says why each
row repeats it). The module is not called csv.py so that it never hides the standard library's.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from ingest.errors import LoadError
from ingest.loaders.base import LoadedDocument, LoadOptions
from ingest.loaders.common import build_sections
from ingest.loaders.decode import decode_text
from ingest.loaders.tables import row_lines

_SAMPLE = 64 * 1024
_DELIMITERS = ",;\t|"
FIELD_LIMIT = 1_000_000  # characters in one cell: past it, the file is malformed, not a table
# Process-wide, once (the stdlib keeps it global; setting it per call would race the threads
# that load in parallel). The default, 131,072, would refuse a legitimately long cell.
csv.field_size_limit(max(FIELD_LIMIT, csv.field_size_limit()))


def _dialect(text: str, tabs: bool) -> type[csv.Dialect] | csv.Dialect:
    """The sniffed dialect; a .tsv that does not sniff is tab-separated, anything else CSV."""
    try:
        return csv.Sniffer().sniff(text[:_SAMPLE], delimiters=_DELIMITERS)
    except csv.Error:
        return csv.excel_tab if tabs else csv.excel


def _counted(rows: Iterator[list[str]], options: LoadOptions) -> Iterator[list[str]]:
    cells = 0
    for row in rows:
        cells += sum(1 for cell in row if cell.strip())
        if cells > options.max_sheet_cells:
            raise LoadError(f"spreadsheet has over {options.max_sheet_cells:,} non-empty cells "
                            "(RAG_MAX_SHEET_CELLS)")
        yield row


def load_delimited(data: bytes, options: LoadOptions = LoadOptions(),
                   tabs: bool = False) -> LoadedDocument:
    text = decode_text(data)
    reader = csv.reader(io.StringIO(text), _dialect(text, tabs))
    try:
        lines = row_lines(_counted(reader, options))
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise LoadError(f"a cell over {FIELD_LIMIT:,} characters: not a table") from exc
        raise LoadError(f"malformed CSV ({exc})") from exc
    if not lines:
        raise LoadError("CSV file has no rows")
    body = "\n".join(lines)
    return LoadedDocument(text=body, sections=build_sections(body, [(0, (), None)]), kind="csv")


def load_tsv(data: bytes, options: LoadOptions = LoadOptions()) -> LoadedDocument:
    return load_delimited(data, options, tabs=True)
