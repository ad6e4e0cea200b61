"""The .pptx loader: one section per slide, pages, tables, notes, bad files."""
from __future__ import annotations

import io

import pytest

from tests.ingest.loader_checks import assert_exact_spans, loaded, refusal

pptx = pytest.importorskip("pptx")


def _sample() -> bytes:
    from pptx.util import Inches

    p = pptx.Presentation()
    s1 = p.slides.add_slide(p.slide_layouts[1])
    s1.shapes.title.text = "Roadmap"
    s1.placeholders[1].text = "Ship search\nShip exports"
    p.slides.add_slide(p.slide_layouts[6])  # blank: skipped
    s3 = p.slides.add_slide(p.slide_layouts[6])
    box = s3.shapes.add_textbox(Inches(1), Inches(1), Inches(3), Inches(1))
    box.text_frame.text = "Untitled slide text"
    group = s3.shapes.add_group_shape()
    inner = group.shapes.add_textbox(Inches(1), Inches(3), Inches(3), Inches(1))
    inner.text_frame.text = "Grouped text"
    s4 = p.slides.add_slide(p.slide_layouts[5])
    s4.shapes.title.text = "Numbers"
    table = s4.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(4), Inches(2)).table
    for r, (a, b) in enumerate([("Quarter", "Seats"), ("Q2", "410"), ("Q3", "530")]):
        table.cell(r, 0).text, table.cell(r, 1).text = a, b
    s4.notes_slide.notes_text_frame.text = "Say the seat goal is 600."
    out = io.BytesIO()
    p.save(out)
    return out.getvalue()


def test_one_section_per_slide_with_pages():
    doc = loaded("deck.pptx", _sample())
    assert doc.kind == "pptx"
    got = [(s.heading, s.page, doc.text[s.start:s.end]) for s in doc.sections]
    assert got == [
        (("Roadmap",), 1, "Roadmap\n\nShip search\nShip exports"),
        (("Slide 3",), 3, "Untitled slide text\n\nGrouped text"),
        (("Numbers",), 4, "Numbers\n\nQuarter: Q2 | Seats: 410\nQuarter: Q3 | Seats: 530"
                          "\n\nNotes:\nSay the seat goal is 600."),
    ]


def test_exact_spans():
    assert_exact_spans(loaded("deck.pptx", _sample()))


def test_no_text():
    p = pptx.Presentation()
    p.slides.add_slide(p.slide_layouts[6])
    out = io.BytesIO()
    p.save(out)
    assert refusal("blank.pptx", out.getvalue()) == "PowerPoint file has no text"


def test_disguised_and_corrupt():
    assert refusal("deck.pptx", "plain words\n") == (
        "not a PowerPoint file: the file is plain text; rename it to .txt")
    assert refusal("deck.pptx", _sample()[:3000]).startswith("corrupt PowerPoint file")


def test_pptm_refused_by_name():
    assert refusal("deck.pptm", _sample()).startswith("macro-enabled Office file ('.pptm')")
