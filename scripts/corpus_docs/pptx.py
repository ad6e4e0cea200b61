"""corpus/kestrelbook/q3-roadmap-review.pptx: the Q3 2026 roadmap review deck."""
from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

_WHEN = dt.datetime(2026, 10, 6, 14, 0, 0)


def _zipfix():
    spec = importlib.util.spec_from_file_location(
        "corpus_docs_zipfix", Path(__file__).with_name("_zipfix.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bullets(p, title: str, lines: list[str], notes: str | None = None):
    slide = p.slides.add_slide(p.slide_layouts[1])
    slide.shapes.title.text = title
    slide.placeholders[1].text = "\n".join(lines)
    if notes:
        slide.notes_slide.notes_text_frame.text = notes
    return slide


def _presentation():
    import pptx
    from pptx.util import Inches

    p = pptx.Presentation()
    first = p.slides.add_slide(p.slide_layouts[0])
    first.shapes.title.text = "Kestrelbook Q3 2026 Roadmap Review"
    first.placeholders[1].text = "Product team, Orrery Lane Software"
    _bullets(p, "What shipped in Q3", [
        "Offline editing for the desktop app (project Sandpiper)",
        "Page templates gallery with 64 starter templates",
        "Bulk permission changes for up to 500 pages at once"])
    table_slide = p.slides.add_slide(p.slide_layouts[5])
    table_slide.shapes.title.text = "Q3 adoption by feature"
    rows = [("Feature", "Workspaces using it", "Target"),
            ("Offline editing", "3,140", "2,500"),
            ("Templates gallery", "8,920", "10,000"),
            ("Bulk permissions", "1,275", "1,000")]
    shape = table_slide.shapes.add_table(len(rows), 3, Inches(0.5), Inches(1.6),
                                         Inches(9), Inches(2.5))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            shape.table.cell(r, c).text = value
    _bullets(p, "Q4 priorities", [
        "Whiteboard pages (project Starling)",
        "Granular audit log export",
        "Faster search indexing for large workspaces"],
        notes="Starling beta opens to 40 design-partner workspaces on 9 November 2026; "
              "do not announce the date outside the call.")
    _bullets(p, "Risks", [
        "Starling depends on the new sync engine",
        "Hiring: two of five platform roles still open"])
    return p


def build(target: Path) -> None:
    _zipfix().save_office(_presentation(), target, "Orrery Lane Product",
                          "Kestrelbook Q3 2026 Roadmap Review", _WHEN)
