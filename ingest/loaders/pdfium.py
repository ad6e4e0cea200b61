"""PDFium (pypdfium2): the PDF text reader by default (RAG_PDF_READER=pdfium), and the page
renderer OCR uses.

Why PDFium over pypdf for the text layer: it is Chrome's PDF engine in C++, and read the same
text 10x faster on the heavy PDFs of `make bench-ingest` (7 against 72 ms a page; 1.4 against
17-24 ms on two typeset manuals), so a corpus of PDFs is embedder-bound instead of parser-bound.
On the starter corpus and the bench PDFs the two give the same text, whitespace aside.
pypdf stays one setting away (RAG_PDF_READER=pypdf, pdf.py) for PDFs it reads better.

PDFium is not thread-safe, not even across documents (pypdfium2's documentation: concurrent
calls crash or corrupt the process). Every call into it here holds LOCK, the one process-wide
lock: the watcher, an upload and `POST /ingest` can read PDFs on different threads at once.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ingest.errors import LoadError
from ingest.loaders.common import page_by_page, short_exc

if TYPE_CHECKING:
    from pypdfium2 import PdfDocument

LOCK = threading.Lock()
# PDFium writes U+0002 where a word is hyphenated at the end of a line; pypdf writes "-".
_LINE_END_HYPHEN = "\x02"


def open_document(data: bytes) -> PdfDocument:
    """The PDF in `data`, opened (an empty user password is tried, as readers do); LoadError
    if it is corrupt or needs a password. The caller holds LOCK, and closes the document."""
    import pypdfium2  # imported here: only PDF ingestion pays for it
    from pypdfium2 import raw

    try:
        return pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as exc:
        if exc.err_code == raw.FPDF_ERR_PASSWORD:
            raise LoadError("encrypted PDF (password required); save an unencrypted copy") from exc
        if exc.err_code == raw.FPDF_ERR_SECURITY:
            raise LoadError(f"encrypted PDF that cannot be decrypted: {short_exc(exc)}") from exc
        raise LoadError(f"corrupt PDF: {short_exc(exc)}") from exc


def _locked_page_text(document: PdfDocument, index: int) -> str:
    with LOCK:
        return _page_text(document, index)


def _page_text(document: PdfDocument, index: int) -> str:
    page = document[index]
    try:
        textpage = page.get_textpage()
        try:
            return textpage.get_text_bounded().replace(_LINE_END_HYPHEN, "-")
        finally:
            textpage.close()
    finally:
        page.close()


def raw_page_texts(data: bytes) -> list[str]:
    """The text layer of every page, as PDFium reads it (not yet normalised). LOCK is taken
    per call, not per document: a 2,000-page PDF (14 s) does not hold up another file's PDF
    or OCR for its whole length."""
    with LOCK:
        document = open_document(data)
    try:
        with LOCK:
            count = len(document)
        return page_by_page(count, lambda index: _locked_page_text(document, index))
    finally:
        with LOCK:
            document.close()
