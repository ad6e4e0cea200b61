"""Checks every loader's tests share: the invariants of a loaded document, exact chunk spans,
and the shape of a refusal's reason."""
from __future__ import annotations

from pathlib import PurePath

import pytest

from ingest.chunking import Chunker
from ingest.errors import LoadError
from ingest.loaders import LoadedDocument, LoadOptions, Section, load

PAGED_KINDS = frozenset({"pdf", "pdf-ocr", "pptx"})


def assert_well_formed(doc: LoadedDocument) -> None:
    """The invariants every loader's output must hold (chunking relies on them)."""
    text = doc.text
    assert isinstance(doc, LoadedDocument)
    assert "\r" not in text, "newlines must be normalised to \\n"
    assert doc.sections, "a loaded document has at least one section"
    covered = [False] * len(text)
    previous_end = 0
    for section in doc.sections:
        assert isinstance(section, Section)
        assert 0 <= section.start < section.end <= len(text), section
        assert section.start >= previous_end, f"sections overlap or are out of order: {section}"
        assert text[section.start : section.end].strip(), f"whitespace-only section {section}"
        assert all(isinstance(title, str) and title for title in section.heading), section
        if doc.kind in PAGED_KINDS:
            assert isinstance(section.page, int) and section.page >= 1
        else:
            assert section.page is None
        previous_end = section.end
        covered[section.start : section.end] = [True] * (section.end - section.start)
    lost = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not lost, f"text outside every section: {text[lost[0]:lost[0] + 40]!r}"


def _words(texts: list[str]) -> list[int]:
    """A stand-in tokenizer for span checks: one token per word."""
    return [len(text.split()) for text in texts]


def assert_exact_spans(doc: LoadedDocument, chunker: Chunker | None = None) -> None:
    """Every chunk's text is the extracted text between its offsets, under its section's
    heading and page: what makes a citation checkable."""
    chunks = (chunker or Chunker(_words, max_tokens=48, overlap=8)).split(doc)
    assert chunks, "the document gave no chunks"
    for chunk in chunks:
        assert chunk.text == doc.text[chunk.start:chunk.end], chunk
        owner = next(s for s in doc.sections if s.start <= chunk.start < s.end)
        assert (chunk.heading, chunk.page) == (owner.heading, owner.page), chunk


def loaded(name: str, data: bytes | str, options: LoadOptions = LoadOptions()) -> LoadedDocument:
    """Load `data` (str is UTF-8 encoded) as a file called `name`, checking the invariants."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    doc = load(PurePath("corpus", "sub", name), raw, options)
    assert_well_formed(doc)
    return doc


def refusal(name: str, data: bytes | str, options: LoadOptions = LoadOptions()) -> str:
    """The LoadError reason for loading `data` as `name`; checks the reason is one short line."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with pytest.raises(LoadError) as info:
        load(PurePath("corpus", "sub", name), raw, options)
    reason = str(info.value)
    assert reason and "\n" not in reason and "\r" not in reason, repr(reason)
    assert len(reason) <= 120, reason
    assert "corpus" not in reason and name not in reason, f"path leaked into {reason!r}"
    return reason
