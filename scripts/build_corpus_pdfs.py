"""Render the starter-corpus PDFs from their plain-text sources.

Each source is a small Markdown-like file under scripts/pdf_sources/ (sub-folders allowed):

    # Title              -> the document title (large, bold)
    ## Heading           -> a section heading (bold)
    ### Sub-heading      -> a sub-heading (bold, smaller)
    - item               -> a bullet item
    other lines          -> paragraph text; a blank line ends a paragraph

scripts/pdf_sources/<dir>/<name>.md is written to corpus/<dir>/<name>.pdf. The output is
deterministic: the creation date is fixed, so re-running the script gives the same bytes.
Only the core Helvetica font is used, so sources must stay within Latin-1 (the script
refuses anything else). After writing, every PDF is read back with pypdf to check that
its text layer holds every word of its source.

Usage: .venv/bin/python scripts/build_corpus_pdfs.py [--check-only]
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "scripts" / "pdf_sources"
CORPUS = ROOT / "corpus"
CREATION_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)

BODY_SIZE = 11
BODY_LINE = 5.6
TITLE_SIZE = 18
H2_SIZE = 13.5
H3_SIZE = 12


@dataclass(frozen=True)
class Block:
    kind: str  # "title" | "h2" | "h3" | "para" | "bullet"
    text: str


def parse(source: str) -> list[Block]:
    """Split a source file into blocks; consecutive text lines form one paragraph."""
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Block("para", " ".join(para)))
            para.clear()

    for raw in source.splitlines():
        line = raw.strip()
        if not line:
            flush()
        elif line.startswith("# "):
            flush()
            blocks.append(Block("title", line[2:].strip()))
        elif line.startswith("## "):
            flush()
            blocks.append(Block("h2", line[3:].strip()))
        elif line.startswith("### "):
            flush()
            blocks.append(Block("h3", line[4:].strip()))
        elif line.startswith("- "):
            flush()
            blocks.append(Block("bullet", line[2:].strip()))
        else:
            para.append(line)
    flush()
    return blocks


def check_latin1(path: Path, text: str) -> None:
    bad = sorted({ch for ch in text if ord(ch) > 0xFF})
    if bad:
        raise SystemExit(f"{path}: characters outside Latin-1 (core fonts cannot render them): {bad!r}")


class CorpusPDF(FPDF):
    def footer(self) -> None:
        self.set_y(-14)
        self.set_font("Helvetica", "", 9)
        self.set_text_color(110, 110, 110)
        self.cell(0, 8, f"Page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0, 0, 0)


def render(blocks: list[Block], title: str) -> bytes:
    pdf = CorpusPDF(format="A4", unit="mm")
    pdf.set_creation_date(CREATION_DATE)
    pdf.set_title(title)
    pdf.set_author("ragfirst starter corpus")
    pdf.set_creator("scripts/build_corpus_pdfs.py")
    pdf.set_margins(left=22, top=20, right=22)
    pdf.set_auto_page_break(auto=True, margin=22)
    pdf.alias_nb_pages()
    pdf.add_page()

    def heading(text: str, size: float, space_before: float) -> None:
        # Keep a heading together with the start of the paragraph that follows it.
        if pdf.get_y() > pdf.page_break_trigger - 30:
            pdf.add_page()
        elif pdf.get_y() > pdf.t_margin + 1:
            pdf.ln(space_before)
        pdf.set_font("Helvetica", "B", size)
        pdf.multi_cell(0, size * 0.5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1.5)

    for block in blocks:
        if block.kind == "title":
            heading(block.text, TITLE_SIZE, 0)
            pdf.ln(3)
        elif block.kind == "h2":
            heading(block.text, H2_SIZE, 4)
        elif block.kind == "h3":
            heading(block.text, H3_SIZE, 2.5)
        elif block.kind == "bullet":
            pdf.set_font("Helvetica", "", BODY_SIZE)
            pdf.set_x(pdf.l_margin + 4)
            pdf.cell(5, BODY_LINE, "-")
            pdf.multi_cell(0, BODY_LINE, block.text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(1)
        else:
            pdf.set_font("Helvetica", "", BODY_SIZE)
            pdf.multi_cell(0, BODY_LINE, block.text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(2.5)
    return bytes(pdf.output())


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9\u00c0-\u00ff]+", text)


def verify(pdf_path: Path, blocks: list[Block]) -> int:
    """Check the text layer: every source word, in order, with no words glued together."""
    from pypdf import PdfReader

    reader = PdfReader(pdf_path)
    pages = [page.extract_text() or "" for page in reader.pages]
    extracted = words(" ".join(re.sub(r"Page \d+ of \d+", " ", p) for p in pages))
    expected = words(" ".join(b.text for b in blocks))
    if extracted != expected:
        for i, (got, want) in enumerate(zip(extracted, expected)):
            if got != want:
                context = " ".join(extracted[max(0, i - 5): i + 5])
                raise SystemExit(f"{pdf_path}: text layer differs at word {i}: got {got!r}, want {want!r} ({context})")
        raise SystemExit(f"{pdf_path}: text layer has {len(extracted)} words, source has {len(expected)}")
    for number, text in enumerate(pages, start=1):
        if f"Page {number} of {len(pages)}" not in text:
            raise SystemExit(f"{pdf_path}: page {number} has no page-number footer")
    return len(pages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-only", action="store_true", help="verify the existing PDFs, write nothing")
    args = parser.parse_args()

    sources = sorted(SOURCES.rglob("*.md"))
    if not sources:
        print(f"no sources under {SOURCES}", file=sys.stderr)
        return 1
    for source in sources:
        text = source.read_text(encoding="utf-8")
        check_latin1(source, text)
        blocks = parse(text)
        titles = [b.text for b in blocks if b.kind == "title"]
        if len(titles) != 1 or blocks[0].kind != "title":
            raise SystemExit(f"{source}: must start with exactly one '# ' title line")
        target = CORPUS / source.relative_to(SOURCES).with_suffix(".pdf")
        if not args.check_only:
            target.parent.mkdir(parents=True, exist_ok=True)
            data = render(blocks, titles[0])
            if not target.exists() or target.read_bytes() != data:
                target.write_bytes(data)
        pages = verify(target, blocks)
        n_words = len(words(text))
        print(f"{target.relative_to(ROOT)}: {pages} page(s), {n_words} words")
    return 0


if __name__ == "__main__":
    sys.exit(main())
