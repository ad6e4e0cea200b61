"""`make bench-formats`: can any loader become the ingest's bottleneck?

For each document format in a corpus (the starter corpus by default), load + chunk every file
of that format `--repeat` times with the real tokenizer and report MB/s and chunks/s on one
core, beside the embedder's own chunks/s on the same chunks (the default backend, loaded once,
outside every timing). A format whose chunks/s is well above the embedder's cannot hold the
ingest back: loading runs on its own thread ahead of the embedding (README, "Ingest").
`--ocr PAGES` also times OCR: a PDF of that many scanned pages (needs tesseract).
Prints a markdown table; `--json PATH` also writes the figures.
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

from ingest.embedders import build_embedder
from ingest.loaders import SUPPORTED_EXTENSIONS, LoadOptions, load
from ingest.settings import IngestSettings
from ingest.sync import chunker_for
from tests.bench.report import print_table, write_json
from tests.helpers import ROOT


def by_format(corpus: Path) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(corpus.rglob("*")):
        if path.is_file() and path.suffix.lower() in SUPPORTED_EXTENSIONS:
            groups[path.suffix.lower().lstrip(".")].append(path)
    return dict(groups)


def time_format(paths: list[Path], chunker, options: LoadOptions, repeat: int) -> dict:
    """Seconds to load and chunk these files `repeat` times, and what they gave."""
    blobs = [(p, p.read_bytes()) for p in paths]
    texts: list[str] = []
    start = time.perf_counter()
    for round_ in range(repeat):
        for path, data in blobs:
            chunks = chunker.split(load(path, data, options))
            if round_ == 0:
                texts.extend(c.text for c in chunks)
    seconds = (time.perf_counter() - start) / repeat
    size = sum(len(d) for _, d in blobs)
    return {"files": len(blobs), "mb": size / 1e6, "chunks": len(texts), "seconds": seconds,
            "mb_per_s": size / 1e6 / seconds, "chunks_per_s": len(texts) / seconds,
            "texts": texts}


def embedder_rate(embedder, texts: list[str]) -> float:
    start = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ocr", type=int, default=0, metavar="PAGES")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    settings = IngestSettings.load(ocr=bool(args.ocr))
    embedder = build_embedder(settings)
    chunker = chunker_for(settings, embedder)
    embedder.embed(["warm up"])
    rows, figures = [], {}
    for fmt, paths in by_format(args.corpus).items():
        f = time_format(paths, chunker, settings.load_options(), args.repeat)
        f["embedder_chunks_per_s"] = embedder_rate(embedder, f.pop("texts"))
        figures[fmt] = f
        rows.append([fmt, f["files"], f"{f['mb']:.2f}", f["chunks"], f"{f['mb_per_s']:.2f}",
                     f"{f['chunks_per_s']:.0f}", f"{f['embedder_chunks_per_s']:.0f}",
                     f"{f['chunks_per_s'] / f['embedder_chunks_per_s']:.1f}x"])
    if args.ocr:
        from tests.bench.bench_ocr import ocr_pages_per_second
        figures["ocr_pages_per_s"] = ocr_pages_per_second(args.ocr)
        print(f"OCR: {figures['ocr_pages_per_s']:.2f} pages/s over {args.ocr} scanned pages")
    print_table(["format", "files", "MB", "chunks", "load+chunk MB/s", "load+chunk chunks/s",
                 f"embedder chunks/s ({settings.embed_backend})", "loader/embedder"], rows)
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
