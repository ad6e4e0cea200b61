"""Tests for the PDF loader, with each of its text readers (RAG_PDF_READER: pdfium, pypdf):
pages, refusals, and PDFium's one process-wide lock."""
from __future__ import annotations

import io
import logging
import random
import re
import threading
from pathlib import Path, PurePath

import pytest

from ingest.loaders import LoadOptions, load, pdfium
from ingest.loaders.pdf import page_texts
from ingest.settings import IngestSettings
from tests.ingest.loader_checks import assert_well_formed, loaded, refusal

ROOT = Path(__file__).resolve().parents[2]
READERS = ("pdfium", "pypdf")


def make_pdf(pages: list[str]) -> bytes:
    """A PDF (fpdf2) with one page per string; an empty string makes a blank page."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for page_text in pages:
        pdf.add_page()
        if page_text:
            pdf.multi_cell(0, 8, page_text)
    return bytes(pdf.output())


def encrypt_pdf(data: bytes, user_password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="o", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


THREE_PAGES = ["Alpha page one.", "Bravo page two.\nIts second line.", "Charlie page three."]


@pytest.fixture(scope="module")
def three_page_pdf() -> bytes:
    return make_pdf(THREE_PAGES)


@pytest.fixture(params=READERS)
def options(request: pytest.FixtureRequest) -> LoadOptions:
    return LoadOptions(pdf_reader=request.param)


def texts(doc: object) -> list[str]:
    return [doc.text[s.start : s.end] for s in doc.sections]  # type: ignore[attr-defined]


def test_pdf_one_section_per_page(three_page_pdf: bytes, options: LoadOptions) -> None:
    doc = loaded("three.pdf", three_page_pdf, options)
    assert doc.kind == "pdf"
    assert [s.page for s in doc.sections] == [1, 2, 3]
    assert [s.heading for s in doc.sections] == [(), (), ()]
    assert texts(doc) == THREE_PAGES
    assert doc.text == "\n\n".join(THREE_PAGES)


def test_pdf_blank_middle_page_is_skipped(options: LoadOptions) -> None:
    doc = loaded("gap.pdf", make_pdf(["First page text.", "", "Third page text."]), options)
    assert [s.page for s in doc.sections] == [1, 3]
    assert texts(doc) == ["First page text.", "Third page text."]


def test_pdf_without_text_layer_is_refused(options: LoadOptions) -> None:
    reason = refusal("scan.pdf", make_pdf(["", ""]), options)
    assert reason == "scanned PDF: enable RAG_OCR (needs tesseract)"


def test_pdf_with_user_password_is_refused(three_page_pdf: bytes, options: LoadOptions) -> None:
    assert refusal("locked.pdf", encrypt_pdf(three_page_pdf, "secret"), options) == (
        "encrypted PDF (password required); save an unencrypted copy"
    )


def test_pdf_encrypted_with_empty_user_password_loads(
    three_page_pdf: bytes, options: LoadOptions
) -> None:
    doc = loaded("owner-only.pdf", encrypt_pdf(three_page_pdf, ""), options)
    assert texts(doc) == THREE_PAGES
    assert [s.page for s in doc.sections] == [1, 2, 3]


def test_truncated_pdf_is_refused(three_page_pdf: bytes, options: LoadOptions) -> None:
    reason = refusal("cut.pdf", three_page_pdf[: len(three_page_pdf) // 2], options)
    assert reason == "truncated PDF (no %%EOF at the end); re-export or re-download it"


@pytest.mark.parametrize("data", [
    b"%PDF-1.7\n" + bytes(random.Random(7).randrange(256) for _ in range(3000)) + b"\n%%EOF\n",
    b"%PDF-1.4\n" + b"\x00garbage\n" * 50 + b"%%EOF\n",
])
def test_corrupt_pdf_is_refused(data: bytes, options: LoadOptions) -> None:
    assert refusal("corrupt.pdf", data, options).startswith("corrupt PDF: ")


def test_non_pdf_under_pdf_extension_is_refused(options: LoadOptions) -> None:
    reason = refusal("fake.pdf", b"<html><p>not a pdf</p></html>\n%%EOF", options)
    assert reason == "not a PDF file (bad header)"


def test_pdf_with_zero_pages_is_refused(options: LoadOptions) -> None:
    from pypdf import PdfWriter

    out = io.BytesIO()
    PdfWriter().write(out)
    reason = refusal("nothing.pdf", out.getvalue(), options)
    if options.pdf_reader == "pypdf":
        assert reason == "PDF has no pages"
    else:  # PDFium will not open a document without pages at all
        assert reason.startswith("corrupt PDF: ")


def test_a_word_hyphenated_at_a_line_end_keeps_its_hyphen(options: LoadOptions) -> None:
    # PDFium marks such a hyphen with U+0002 (a control character the loader would drop,
    # gluing "manip" to "ulation"); pypdf keeps the "-".
    doc = loaded("hyphen.pdf", make_pdf(["Data manip-\nulation here."]), options)
    assert re.sub(r"\s+", " ", doc.text) in ("Data manip-ulation here.",
                                             "Data manip- ulation here.")


def _fail_second_page(monkeypatch: pytest.MonkeyPatch, reader: str) -> None:
    if reader == "pypdf":
        from pypdf import PageObject as owner
        name = "extract_text"
    else:
        from pypdfium2 import PdfTextPage as owner
        name = "get_text_bounded"
    original = getattr(owner, name)
    calls = []

    def flaky(self: object, *args: object, **kwargs: object) -> str:
        calls.append(1)
        if len(calls) == 2:
            raise KeyError("/Font\nresource missing")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, flaky)


def test_pdf_page_that_fails_is_reported_not_skipped(
    three_page_pdf: bytes, options: LoadOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_second_page(monkeypatch, options.pdf_reader)
    reason = refusal("flaky.pdf", three_page_pdf, options)
    assert reason.startswith("page 2 could not be read: ")
    monkeypatch.undo()
    assert texts(loaded("flaky.pdf", three_page_pdf, options)) == THREE_PAGES  # lock released


def test_pdf_warnings_are_silenced(caplog: pytest.LogCaptureFixture) -> None:
    data = make_pdf(["Recovered text."])
    damaged = re.sub(rb"startxref\s+\d+", b"startxref\n999", data)  # pypdf warns and recovers
    level = logging.getLogger("pypdf").level
    with caplog.at_level(logging.DEBUG):
        for reader in READERS:
            assert loaded("damaged.pdf", damaged, LoadOptions(pdf_reader=reader)).text == (
                "Recovered text.")
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]
    assert logging.getLogger("pypdf").level == level


def test_pdf_output_is_well_formed(three_page_pdf: bytes, options: LoadOptions) -> None:
    assert_well_formed(load(PurePath("x.pdf"), three_page_pdf, options))


# --------------------------------------------------------------------------- the two readers


@pytest.mark.parametrize("path", sorted((ROOT / "corpus").rglob("*.pdf")), ids=lambda p: p.name)
def test_both_readers_read_the_starter_pdfs_alike(path: Path) -> None:
    data = path.read_bytes()
    by_pdfium, by_pypdf = page_texts(data, "pdfium"), page_texts(data, "pypdf")
    assert len(by_pdfium) == len(by_pypdf) > 0
    for one, other in zip(by_pdfium, by_pypdf):
        assert one.split() == other.split()


def test_the_setting_picks_the_reader() -> None:
    assert IngestSettings().load_options().pdf_reader == "pdfium"
    assert IngestSettings(pdf_reader="pypdf").load_options().pdf_reader == "pypdf"
    with pytest.raises(ValueError, match="pdf_reader"):
        IngestSettings(pdf_reader="mupdf")


# --------------------------------------------------------------------------- PDFium's lock


def test_every_pdfium_call_holds_the_lock(
    three_page_pdf: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pypdfium2

    seen: list[str] = []  # the calls made without the lock
    calls: list[str] = []
    for owner, name in ((pypdfium2.PdfDocument, "__init__"), (pypdfium2.PdfDocument, "__len__"),
                        (pypdfium2.PdfDocument, "__getitem__"),
                        (pypdfium2.PdfDocument, "close"), (pypdfium2.PdfPage, "get_textpage"),
                        (pypdfium2.PdfPage, "close"), (pypdfium2.PdfTextPage, "get_text_bounded"),
                        (pypdfium2.PdfTextPage, "close")):
        original = getattr(owner, name)

        def watched(self: object, *args: object, _original=original, _name=name,
                    **kwargs: object) -> object:
            calls.append(_name)
            if not pdfium.LOCK.locked():
                seen.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(owner, name, watched)
    assert page_texts(three_page_pdf, "pdfium") == THREE_PAGES
    assert seen == []
    for name, at_least in (("__init__", 1), ("__getitem__", 3), ("get_text_bounded", 3),
                           ("close", 1 + 3 + 3)):
        assert calls.count(name) >= at_least, (name, calls)
    assert not pdfium.LOCK.locked()


def test_an_unknown_reader_is_refused(three_page_pdf: bytes) -> None:
    with pytest.raises(ValueError, match="unknown PDF reader 'mupdf'"):
        page_texts(three_page_pdf, "mupdf")


def test_threads_reading_pdfs_at_once_get_what_one_thread_gets(three_page_pdf: bytes) -> None:
    other = make_pdf([f"Page {n} of another document." for n in range(1, 6)])
    expected = {0: page_texts(three_page_pdf), 1: page_texts(other)}
    results: list[bool] = []

    def read(which: int) -> None:
        data = three_page_pdf if which == 0 else other
        results.extend(page_texts(data) == expected[which] for _ in range(20))

    threads = [threading.Thread(target=read, args=(n % 2,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 120 and all(results)
