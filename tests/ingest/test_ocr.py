"""OCR of PDF pages without a text layer: scanned PDFs are made here (text drawn into an image
with Pillow, the image embedded in a PDF with fpdf2, so the page has no text layer)."""
from __future__ import annotations

import io
from unittest import mock

import pytest

from ingest.loaders import LoadOptions
from ingest.loaders.ocr import MAX_PIXELS, render_scale
from tests.ingest.loader_checks import assert_exact_spans, loaded, refusal
from tests.system_deps import require_tesseract

OCR = LoadOptions(ocr=True)
SCAN_LINES = ["Kestrelbook archive", "retention ninety days", "invoice number 4711"]


@pytest.fixture
def tesseract() -> None:
    require_tesseract()


def scanned_page_png(lines: list[str]) -> bytes:
    """A white A4-ish page at 150 dpi with `lines` in a large, clear font."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (1240, 1754), 255)
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 56)
    except OSError:
        font = ImageFont.load_default(size=56)
    for index, line in enumerate(lines):
        draw.text((100, 150 + index * 120), line, fill=0, font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def make_pdf(pages: list[str | list[str]]) -> bytes:
    """A PDF whose str pages have a text layer and whose list pages are scans of those lines."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    for page in pages:
        pdf.add_page()
        if isinstance(page, str):
            pdf.set_font("Helvetica", size=12)
            pdf.multi_cell(0, 6, page)
        else:
            pdf.image(io.BytesIO(scanned_page_png(page)), x=0, y=0, w=210, h=297)
    return bytes(pdf.output())


def assert_read(text: str) -> None:
    """A few distinctive words of SCAN_LINES are there (OCR may add a little noise)."""
    lowered = text.lower()
    for word in ("kestrelbook", "retention", "ninety", "invoice", "4711"):
        assert word in lowered, f"{word!r} not in OCR text {text!r}"


def test_scanned_pdf_refused_without_ocr() -> None:
    assert refusal("scan.pdf", make_pdf([SCAN_LINES])) == \
        "scanned PDF: enable RAG_OCR (needs tesseract)"


def test_scanned_pdf_refused_when_tesseract_missing() -> None:
    with mock.patch("ingest.loaders.ocr.shutil.which", return_value=None):
        assert refusal("scan.pdf", make_pdf([SCAN_LINES]), OCR) == \
            "scanned PDF: RAG_OCR is on but tesseract is not installed"


def test_scanned_pdf_read_by_ocr(tesseract: None) -> None:
    doc = loaded("scan.pdf", make_pdf([SCAN_LINES, ["second page here", "kestrel falcon"]]), OCR)
    assert doc.kind == "pdf-ocr"
    assert [s.page for s in doc.sections] == [1, 2]
    first = doc.text[doc.sections[0].start:doc.sections[0].end]
    assert_read(first)
    second = doc.text[doc.sections[1].start:doc.sections[1].end].lower()
    assert "second" in second and "falcon" in second
    assert "\r" not in doc.text and "\x0c" not in doc.text
    assert_exact_spans(doc)


def test_mixed_pdf_keeps_text_page_and_reads_scan(tesseract: None) -> None:
    layer = "This page has a real text layer about the Kestrelbook sync agent."
    doc = loaded("mixed.pdf", make_pdf([layer, SCAN_LINES]), OCR)
    assert doc.kind == "pdf-ocr"
    assert [s.page for s in doc.sections] == [1, 2]
    assert doc.text[doc.sections[0].start:doc.sections[0].end] == layer
    assert_read(doc.text[doc.sections[1].start:doc.sections[1].end])


def test_mixed_pdf_without_ocr_keeps_only_the_text_page() -> None:
    layer = "This page has a real text layer about the Kestrelbook sync agent."
    doc = loaded("mixed.pdf", make_pdf([layer, SCAN_LINES]))
    assert doc.kind == "pdf"
    assert [s.page for s in doc.sections] == [1]


def test_text_pdf_stays_pdf_with_ocr_on(tesseract: None) -> None:
    pages = ["A page of ordinary extracted text, long enough.", "Another page with text."]
    doc = loaded("text.pdf", make_pdf(pages), OCR)
    assert doc.kind == "pdf"
    assert doc.text == "\n\n".join(pages)


def test_render_scale_is_capped_for_huge_pages() -> None:
    assert render_scale(595, 842) == pytest.approx(300 / 72)  # A4 at 300 dpi
    huge = 14400.0  # the largest mediabox PDF allows: 200 inches square
    scale = render_scale(huge, huge)
    assert (huge * scale) ** 2 <= MAX_PIXELS * 1.0001


def test_huge_scanned_page_is_rendered_within_the_pixel_cap(tesseract: None) -> None:
    import pypdfium2
    from fpdf import FPDF

    pdf = FPDF(format=(5080, 5080))  # 200 inches square: 3.6 GP at 300 dpi if not capped
    pdf.add_page()
    pdf.image(io.BytesIO(scanned_page_png(SCAN_LINES)), x=0, y=0, w=5080, h=5080)
    sizes: list[tuple[int, int]] = []
    original = pypdfium2.PdfPage.render

    def render(page, **kwargs):
        bitmap = original(page, **kwargs)
        sizes.append((bitmap.width, bitmap.height))
        return bitmap

    with mock.patch.object(pypdfium2.PdfPage, "render", render):
        doc = loaded("huge.pdf", bytes(pdf.output()), OCR)
    assert sizes and all(w * h <= MAX_PIXELS for w, h in sizes), sizes
    assert doc.kind == "pdf-ocr"
    assert "retention ninety" in doc.text.lower()  # the image is blurred by the scaling


def test_pdfium_renders_under_its_lock_and_tesseract_reads_without_it(tesseract: None) -> None:
    import pypdfium2
    import pytesseract

    from ingest.loaders.pdfium import LOCK

    held: dict[str, list[bool]] = {"render": [], "tesseract": []}
    render, read = pypdfium2.PdfPage.render, pytesseract.image_to_string

    def watched_render(page, **kwargs):
        held["render"].append(LOCK.locked())
        return render(page, **kwargs)

    def watched_read(image, **kwargs):
        held["tesseract"].append(LOCK.locked())
        return read(image, **kwargs)

    with mock.patch.object(pypdfium2.PdfPage, "render", watched_render), \
            mock.patch.object(pytesseract, "image_to_string", watched_read):
        doc = loaded("scan.pdf", make_pdf([SCAN_LINES, ["second page here"]]), OCR)
    assert doc.kind == "pdf-ocr"
    assert held == {"render": [True, True], "tesseract": [False, False]}
    assert not LOCK.locked()
