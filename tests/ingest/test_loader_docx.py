"""The .docx loader: structure in document order, exact spans, tracked changes, bad files."""
from __future__ import annotations

import io
import zipfile

import pytest

from ingest.loaders import LoadOptions
from tests.ingest.loader_checks import assert_exact_spans, loaded, refusal

docx = pytest.importorskip("docx")

_W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _save(document) -> bytes:
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _sample() -> bytes:
    from docx.oxml import parse_xml

    d = docx.Document()
    d.sections[0].header.paragraphs[0].text = "HEADER-SECRET"
    d.sections[0].footer.paragraphs[0].text = "FOOTER-SECRET"
    d.add_paragraph("Handbook", style="Title")
    d.add_paragraph("Intro paragraph before any heading.")
    d.add_heading("Getting started", level=1)
    d.add_paragraph("First paragraph.")
    d.add_paragraph("Bring a laptop", style="List Bullet")
    d.add_paragraph("Sign the form", style="List Number")
    d.add_heading("Accounts", level=2)
    table = d.add_table(rows=3, cols=2)
    for r, (a, b) in enumerate([("Plan", "Response"), ("Free", "48 h"), ("Pro", "4 h")]):
        table.cell(r, 0).text, table.cell(r, 1).text = a, b
    d.add_paragraph("After the table.")
    d.add_heading("Support", level=1)
    d.element.body.insert(len(d.element.body) - 1, parse_xml(
        f'<w:p {_W_NS}><w:r><w:t xml:space="preserve">Kept </w:t></w:r>'
        '<w:del w:id="1" w:author="a"><w:r><w:delText>DELETED-WORDS</w:delText></w:r></w:del>'
        '<w:ins w:id="2" w:author="a"><w:r><w:t>INSERTED-WORDS</w:t></w:r></w:ins></w:p>'))
    return _save(d)


def test_structure_in_document_order():
    doc = loaded("handbook.docx", _sample())
    assert doc.kind == "docx"
    assert doc.text.startswith("Handbook\n\nIntro paragraph before any heading.")
    assert "- Bring a laptop\n- Sign the form" in doc.text
    assert "Plan: Free | Response: 48 h\nPlan: Pro | Response: 4 h\n\nAfter the table." in doc.text
    by_heading = {s.heading: doc.text[s.start:s.end] for s in doc.sections}
    assert by_heading[("Handbook",)].startswith("Handbook\n\nIntro")
    assert by_heading[("Handbook", "Getting started", "Accounts")].startswith("Accounts\n\nPlan:")
    assert by_heading[("Handbook", "Support")].startswith("Support\n\nKept INSERTED-WORDS")
    assert all(s.page is None for s in doc.sections)


def test_exact_spans():
    assert_exact_spans(loaded("handbook.docx", _sample()))


def test_headers_footers_and_deletions_dropped_insertions_kept():
    text = loaded("handbook.docx", _sample()).text
    assert "HEADER-SECRET" not in text and "FOOTER-SECRET" not in text
    assert "DELETED-WORDS" not in text
    assert "Kept INSERTED-WORDS" in text


def test_comments_not_indexed():
    d = docx.Document()
    paragraph = d.add_paragraph("Commented text.")
    d.add_comment(paragraph.runs, text="COMMENT-SECRET", author="r")
    doc = loaded("c.docx", _save(d))
    assert "Commented text." in doc.text and "COMMENT-SECRET" not in doc.text


def test_no_text():
    assert refusal("empty.docx", _save(docx.Document())) == "Word document has no text"


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_zip_bomb_under_a_small_limit():
    reason = refusal("bomb.docx", _zip({"word/document.xml": b"\0" * 200_000}),
                     LoadOptions(max_unzipped_bytes=100_000))
    assert reason.startswith("Word document would inflate to 200,000 bytes, over the 100,000")


def test_real_zip_bomb_refused_before_inflating(monkeypatch):
    data = _zip({"word/document.xml": b"\0" * 150_000_000})
    assert len(data) < 1_000_000
    def no_inflate(*_args, **_kwargs):
        raise AssertionError("inflated an entry of a bomb")
    monkeypatch.setattr(zipfile.ZipFile, "open", no_inflate)
    reason = refusal("bomb.docx", data)
    assert "would inflate to 150,000,000 bytes" in reason


def test_corrupt_zip():
    reason = refusal("broken.docx", _sample()[:2000])
    assert reason.startswith("corrupt Word document (damaged zip")


def test_password_protected():
    pytest.importorskip("msoffcrypto")
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = io.BytesIO(_sample())
    encrypted = io.BytesIO()
    OOXMLFile(plain).encrypt("secret", encrypted)
    reason = refusal("locked.docx", encrypted.getvalue())
    assert reason == "password-protected Word document: save a copy without the password"


def test_plain_text_and_html_disguised_as_docx():
    assert refusal("notes.docx", "just some notes\n") == (
        "not a Word document: the file is plain text; rename it to .txt")
    assert refusal("page.docx", "<!DOCTYPE html><html><body>x</body></html>") == (
        "not a Word document: the file is HTML; rename it to .html")


def test_macros_inside_docx():
    with zipfile.ZipFile(io.BytesIO(_sample())) as source:
        entries = {info.filename: source.read(info) for info in source.infolist()}
    entries["word/vbaProject.bin"] = b"\0" * 64
    assert refusal("macro.docx", _zip(entries)).startswith(
        "Word document holds macros (vbaProject.bin)")


def test_docm_refused_by_name():
    assert refusal("macro.docm", _sample()).startswith("macro-enabled Office file ('.docm')")
