"""OCR for PDF pages without a text layer (scans): render the page, read it with tesseract.

Used by the PDF loader when `LoadOptions.ocr` (RAG_OCR) is on, for the pages whose text layer
is empty or nearly so. Each page is rendered with pypdfium2 (PDFium, a self-contained PyPI wheel)
at ~300 dpi and read by pytesseract, which runs Debian's `tesseract` binary (tesseract-ocr,
tesseract-ocr-eng; scripts/system-deps.sh installs them). Why not ocrmypdf: we need each page's
text, to keep citations pointing at page numbers, not a rewritten PDF with a text layer added;
ocrmypdf rewrites the file (we serve originals back unchanged), and needs ghostscript and more
system programs. The work is bounded: a page is rendered at most MAX_PIXELS pixels (a page
with a huge mediabox is rendered smaller, never into gigabytes of bitmap), and tesseract gets
PAGE_TIMEOUT seconds per page. Tesseract runs one OpenMP thread (OMP_THREAD_LIMIT=1 unless the
operator set it): its default threads fight over a small machine's cores, and on 2 cores one
thread read a page ~7x faster (0.06 vs 0.49 pages/s, tests/bench/bench_ocr.py).
"""
from __future__ import annotations

import math
import os
import re
import shutil
from typing import TYPE_CHECKING

from ingest.errors import LoadError
from ingest.loaders.common import normalize_newlines, short_exc
from ingest.loaders.pdfium import LOCK, open_document

if TYPE_CHECKING:
    from PIL.Image import Image
    from pypdfium2 import PdfDocument

DPI = 300
MAX_PIXELS = 25_000_000  # ~A4 at 300 dpi is 8.7 MP; US Letter 8.4 MP
MIN_CHARS = 20  # a page with fewer non-space characters in its text layer is treated as scanned
PAGE_TIMEOUT = 120  # seconds tesseract may spend on one page
LANGUAGE = "eng"
_JUNK_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def tesseract_available() -> bool:
    """Whether the tesseract binary pytesseract drives is on PATH."""
    return shutil.which("tesseract") is not None


def needs_ocr(page_text: str) -> bool:
    """Whether a page's text layer is (almost) empty: a scan, or a page of images."""
    return sum(not ch.isspace() for ch in page_text) < MIN_CHARS


def render_scale(width_pt: float, height_pt: float) -> float:
    """PDFium's scale (pixels per point) for DPI, lowered so the bitmap stays <= MAX_PIXELS."""
    scale = DPI / 72
    area = max(width_pt, 1.0) * max(height_pt, 1.0)
    if area * scale * scale > MAX_PIXELS:
        scale = math.sqrt(MAX_PIXELS / area)
    return scale


def clean(text: str) -> str:
    """OCR output normalised like a text layer: \\n newlines, no control characters, no
    trailing whitespace, no form feed (tesseract ends each page with one)."""
    return _JUNK_CONTROLS.sub("", normalize_newlines(text)).rstrip()


def _render(document: PdfDocument, number: int) -> Image:
    """Page `number` (1-based) as a grayscale image, at most MAX_PIXELS; the caller holds LOCK."""
    page = document[number - 1]
    try:
        width, height = page.get_size()
        bitmap = page.render(scale=render_scale(width, height), grayscale=True)
        try:
            return bitmap.to_pil().copy()  # the copy owns its pixels; the bitmap can go
        finally:
            bitmap.close()
    finally:
        page.close()


def ocr_pages(data: bytes, numbers: list[int]) -> dict[int, str]:
    """The OCR text of the (1-based) pages `numbers` of the PDF in `data`. PDFium renders a
    page under its lock (pdfium.py); tesseract, the slow part, reads it without the lock."""
    import pytesseract  # imported here: only OCR pays for it

    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # read by each tesseract child at start
    with LOCK:
        try:
            document = open_document(data)
        except LoadError as exc:
            raise LoadError(f"PDF could not be rendered for OCR: {exc}") from exc
    texts: dict[int, str] = {}
    try:
        for number in numbers:
            try:
                with LOCK:
                    image = _render(document, number)
                raw = pytesseract.image_to_string(image, lang=LANGUAGE, timeout=PAGE_TIMEOUT)
            except Exception as exc:
                raise LoadError(f"page {number} could not be read by OCR: "
                                f"{short_exc(exc, 60)}") from exc
            texts[number] = clean(raw)
    finally:
        with LOCK:
            document.close()
    return texts
