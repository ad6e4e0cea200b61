"""OCR throughput: pages per second for scanned pages of ordinary prose (~45 lines of 11 pt-ish
text on A4, no text layer), through the PDF loader with RAG_OCR on (pypdfium2 at 300 dpi +
tesseract). Prints the figure; asserts nothing.

Usage: PYTHONPATH=. .venv/bin/python tests/bench/bench_ocr.py [--pages 5]
"""
from __future__ import annotations

import argparse
import io
import time

from ingest.loaders import LoadOptions
from ingest.loaders.pdf import load_pdf

PROSE = ("Kestrelbook keeps every page of a workspace in a space, and each space has a "
         "permission preset that decides who may read, edit or move its pages. ")


def scanned_pdf(pages: int) -> bytes:
    """`pages` A4 pages, each an image (150 dpi) of ~45 lines of prose."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw, ImageFont

    words = (PROSE * 40).split()
    lines = [" ".join(words[i:i + 12]) for i in range(0, 12 * 45, 12)]
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 22)
    except OSError:
        font = ImageFont.load_default(size=22)
    pdf = FPDF(format="A4")
    for _ in range(pages):
        image = Image.new("L", (1240, 1754), 255)
        draw = ImageDraw.Draw(image)
        for index, line in enumerate(lines):
            draw.text((90, 100 + index * 34), line, fill=0, font=font)
        png = io.BytesIO()
        image.save(png, format="PNG")
        pdf.add_page()
        pdf.image(io.BytesIO(png.getvalue()), x=0, y=0, w=210, h=297)
    return bytes(pdf.output())


def timed(pages: int) -> tuple[float, int]:
    """(seconds to load a `pages`-page scanned PDF with OCR, characters read)."""
    data = scanned_pdf(pages)
    started = time.perf_counter()
    doc = load_pdf(data, LoadOptions(ocr=True))
    assert doc.kind == "pdf-ocr", doc.kind  # else nothing was OCR'd and the figure means nothing
    return time.perf_counter() - started, len(doc.text)


def ocr_pages_per_second(pages: int) -> float:
    """OCR throughput over `pages` scanned pages (make bench-formats --ocr uses it)."""
    return pages / timed(pages)[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=5)
    args = parser.parse_args(argv)
    elapsed, chars = timed(args.pages)
    print(f"{args.pages} scanned pages, {chars:,} chars read in {elapsed:.2f} s: "
          f"{args.pages / elapsed:.2f} pages/s")


if __name__ == "__main__":
    main()
