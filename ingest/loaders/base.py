"""The types every loader returns: the extracted text and the sections that cover it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Section:
    """A span of `LoadedDocument.text` under one heading path, on one page."""

    start: int
    end: int
    heading: tuple[str, ...] = ()
    page: int | None = None


@dataclass(frozen=True)
class LoadedDocument:
    text: str
    sections: tuple[Section, ...]
    # "markdown" | "text" | "html" | "pdf" | "pdf-ocr" (some pages read by OCR) | "docx" |
    # "pptx" | "xlsx" | "csv" (.csv and .tsv) | "epub"
    kind: str


@dataclass(frozen=True)
class LoadOptions:
    """What the settings let a loader do: limits on what a small file may grow into, OCR, and
    the PDF reader."""

    # Office files and EPUBs are zips: the most their entries may inflate to, together.
    max_unzipped_bytes: int = 100_000_000
    max_sheet_cells: int = 1_000_000  # non-empty cells a spreadsheet (.xlsx, .csv) may hold
    ocr: bool = False  # read PDF pages without a text layer with tesseract
    pdf_reader: Literal["pdfium", "pypdf"] = "pdfium"  # what reads a PDF's text layer
