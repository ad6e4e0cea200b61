"""Every file type the ingest reads can be downloaded, with a type a browser handles safely."""
from __future__ import annotations

from app.api.routes.collection_documents import CONTENT_TYPES, INLINE, TEXT, content_disposition
from ingest.loaders import SUPPORTED_EXTENSIONS


def test_every_supported_extension_has_a_content_type():
    assert set(CONTENT_TYPES) == set(SUPPORTED_EXTENSIONS)


def test_only_pdfs_and_text_are_shown_inline():
    inline = {ext for ext, media in CONTENT_TYPES.items() if media in INLINE}
    assert {".pdf", ".md", ".txt", ".html", ".csv"} <= inline
    assert not {".docx", ".pptx", ".xlsx", ".epub"} & inline
    assert CONTENT_TYPES[".html"] == TEXT  # never text/html: see the route
    assert content_disposition("a.docx", inline=False) == 'attachment; filename="a.docx"'
    assert content_disposition("a.pdf") == 'inline; filename="a.pdf"'
