"""PowerPoint files (.pptx): one section per slide, its page the slide number.

A slide's text is its title, then the text of its other shapes in shape order (groups
recursed, tables one line per row via tables.row_lines), then its speaker notes after a
"Notes:" line. Its heading is the title, else "Slide N". Slides with no text are skipped.
"""
from __future__ import annotations

import io

from ingest.errors import LoadError
from ingest.loaders import zipsafe
from ingest.loaders.base import LoadedDocument, LoadOptions
from ingest.loaders.common import build_sections, normalize_newlines
from ingest.loaders.tables import row_lines

WHAT = "PowerPoint file"


def _frame_text(frame) -> str:
    lines = (normalize_newlines(p.text).replace("\x0b", "\n").strip() for p in frame.paragraphs)
    return "\n".join(line for line in lines if line)


def _shape_texts(shapes, title_shape, options: LoadOptions):
    """The text of each shape but the title, in shape order, groups recursed."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shape_texts(shape.shapes, None, options)
        elif getattr(shape, "has_table", False) and shape.has_table:
            rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
            lines = row_lines(rows, options.max_sheet_cells)
            if lines:
                yield "\n".join(lines)
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            if text := _frame_text(shape.text_frame):
                yield text


def _slide(slide, number: int, options: LoadOptions) -> tuple[tuple[str, ...], str]:
    """A slide's heading and text ("" when it holds none)."""
    title_shape = slide.shapes.title
    title = ""
    if title_shape is not None and title_shape.has_text_frame:
        title = " ".join(title_shape.text_frame.text.split())
    parts = [title] if title else []
    parts += list(_shape_texts(slide.shapes, title_shape, options))
    if slide.has_notes_slide:
        frame = slide.notes_slide.notes_text_frame
        notes = _frame_text(frame) if frame is not None else ""
        if notes:
            parts.append("Notes:\n" + notes)
    return ((title,) if title else (f"Slide {number}",)), "\n\n".join(parts)


def load_pptx(data: bytes, options: LoadOptions = LoadOptions()) -> LoadedDocument:
    """The text of a .pptx, one section per slide with text."""
    archive = zipsafe.open_zip(data, WHAT, options)
    zipsafe.check_inflation(archive, options)
    import pptx

    presentation = pptx.Presentation(io.BytesIO(data))
    text, marks = "", []
    for number, slide in enumerate(presentation.slides, start=1):
        heading, body = _slide(slide, number, options)
        if not body:
            continue
        sep = "\n\n" if text else ""
        marks.append((len(text) + len(sep), heading, number))
        text += sep + body
    if not text.strip():
        raise LoadError("PowerPoint file has no text")
    return LoadedDocument(text=text, sections=build_sections(text, marks), kind="pptx")
