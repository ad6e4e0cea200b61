"""Tables as text: one line per row, each cell named by its column's header.

A row becomes `Header: value | Header: value`, empty cells left out. We chose this over a
header line followed by bare rows because a chunk is retrieved on its own: a row that repeats
its column names still says what its numbers are when the chunk holds no header line, and the
column name sits beside its value for both BM25 (the query's "price" and "Pro" land in one
line) and the embedding. Used by every loader that meets a table: Word and PowerPoint tables,
spreadsheet sheets, CSV and TSV files.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from ingest.errors import LoadError


def clean_cell(value: object) -> str:
    """A cell's value on one line: None is empty, whitespace collapsed."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).split())


def _header_names(header: Sequence[str], width: int) -> list[str]:
    """The header row's names, a blank or missing one named by its position ("column 3")."""
    names = list(header) + [""] * (width - len(header))
    return [name or f"column {i + 1}" for i, name in enumerate(names)]


def row_lines(rows: Iterable[Sequence[object]], max_cells: int | None = None) -> list[str]:
    """The rows of a table as lines, the first non-empty row taken as the header.

    Empty rows are skipped, and so are columns empty in every row below the header (their
    header names nothing). `max_cells` caps the non-empty cells read; past it, LoadError.
    """
    header: list[str] | None = None
    body: list[list[str]] = []
    cells = 0
    for raw in rows:
        row = [clean_cell(value) for value in raw]
        filled = sum(1 for cell in row if cell)
        if not filled:
            continue
        cells += filled
        if max_cells is not None and cells > max_cells:
            raise LoadError(f"over {max_cells:,} non-empty cells (RAG_MAX_SHEET_CELLS)")
        if header is None:
            header = row
        else:
            body.append(row)
    if header is None:
        return []
    if not body:  # a table of one row: its cells are the text
        return [" | ".join(cell for cell in header if cell)]
    width = max(len(header), *(len(row) for row in body))
    names = _header_names(header, width)
    used = [i for i in range(width) if any(i < len(row) and row[i] for row in body)]
    return [" | ".join(f"{names[i]}: {row[i]}" for i in used if i < len(row) and row[i])
            for row in body]
