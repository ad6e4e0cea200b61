"""Plain text: the decoded text as one section."""
from __future__ import annotations

from ingest.loaders.base import LoadedDocument
from ingest.loaders.common import build_sections
from ingest.loaders.decode import decode_text


def load_text(data: bytes) -> LoadedDocument:
    """Load a plain-text file: one section over its trimmed content, no heading."""
    text = decode_text(data)
    return LoadedDocument(text=text, sections=build_sections(text, [(0, (), None)]), kind="text")
