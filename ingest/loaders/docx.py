"""Word documents (.docx): the body's paragraphs and tables in document order.

Headings ("Title", "Heading 1".."Heading 9") open sections under their heading path; list
items become "- " lines; tables become one line per row (tables.row_lines). Headers, footers
and comments are not read. A paragraph's text is taken from its XML, not python-docx's
`Paragraph.text`, so tracked changes are read as accepted: insertions (w:ins) are kept,
deletions (w:del, w:moveFrom) dropped.
"""
from __future__ import annotations

import io
import re

from ingest.errors import LoadError
from ingest.loaders import zipsafe
from ingest.loaders.base import LoadedDocument, LoadOptions
from ingest.loaders.common import HeadingStack, build_sections, normalize_newlines
from ingest.loaders.tables import row_lines

WHAT = "Word document"
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_HEADING = re.compile(r"heading ([1-9])$")
_DROPPED = {_W + "del", _W + "moveFrom"}


def _removed(element, stop) -> bool:
    """Whether `element` sits inside a tracked deletion (below `stop`, the paragraph)."""
    node = element.getparent()
    while node is not None and node is not stop:
        if node.tag in _DROPPED:
            return True
        node = node.getparent()
    return False


def _para_text(p) -> str:
    """A paragraph's text as accepted: w:t runs (inserted ones too), tabs and breaks."""
    parts = []
    for el in p.iter(_W + "t", _W + "tab", _W + "br", _W + "cr"):
        if _removed(el, p):
            continue
        if el.tag == _W + "t":
            parts.append(el.text or "")
        else:
            parts.append("\t" if el.tag == _W + "tab" else "\n")
    return normalize_newlines("".join(parts)).strip()


def _heading_level(style_name: str) -> int | None:
    name = style_name.strip().lower()
    if name == "title":
        return 0
    match = _HEADING.match(name)
    return int(match.group(1)) if match else None


def _is_list(paragraph) -> bool:
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    if style.lower().startswith("list bullet") or style.lower().startswith("list number"):
        return True
    ppr = paragraph._p.pPr
    return ppr is not None and ppr.numPr is not None


def _table_lines(tbl, options: LoadOptions) -> list[str]:
    rows = []
    for tr in tbl.iterchildren(_W + "tr"):
        rows.append([" ".join(t for p in tc.iter(_W + "p") if (t := _para_text(p)))
                     for tc in tr.iterchildren(_W + "tc")])
    return row_lines(rows, options.max_sheet_cells)


def _blocks(doc, options: LoadOptions):
    """(heading level or None, text, is list item) per body block, in document order."""
    from docx.text.paragraph import Paragraph

    for child in doc.element.body.iterchildren():
        if child.tag == _W + "p":
            text = _para_text(child)
            if not text:
                continue
            paragraph = Paragraph(child, doc)
            style = (paragraph.style.name if paragraph.style is not None else "") or ""
            level = _heading_level(style)
            if level is not None:
                yield level, " ".join(text.split()), False
            elif _is_list(paragraph):
                yield None, "- " + text, True
            else:
                yield None, text, False
        elif child.tag == _W + "tbl":
            lines = _table_lines(child, options)
            if lines:
                yield None, "\n".join(lines), False


def load_docx(data: bytes, options: LoadOptions = LoadOptions()) -> LoadedDocument:
    """The body text of a .docx, one section per heading."""
    archive = zipsafe.open_zip(data, WHAT, options)
    zipsafe.check_inflation(archive, options)
    import docx

    doc = docx.Document(io.BytesIO(data))
    text, marks = "", [(0, (), None)]
    stack = HeadingStack()
    previous_list = False
    for level, block, is_item in _blocks(doc, options):
        sep = "" if not text else ("\n" if is_item and previous_list else "\n\n")
        if level is not None:
            marks.append((len(text) + len(sep), stack.push(level, block), None))
        text += sep + block
        previous_list = is_item
    if not text.strip():
        raise LoadError("Word document has no text")
    return LoadedDocument(text=text, sections=build_sections(text, marks), kind="docx")
