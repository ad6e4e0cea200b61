"""`python -m ingest`: bring the index in step with the corpus and print what changed."""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from ingest.errors import IndexDamagedError, IndexStorageError, IngestError
from ingest.settings import IngestSettings
from ingest.sync import IngestReport, run_ingest


def parse_args(argv: list[str] | None, prog: str = "python -m ingest") -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Ingest the corpus into the index incrementally: unchanged files cost "
                    "nothing, changed files are replaced, deleted files are removed.")
    p.add_argument("--corpus", type=Path, help="corpus folder (default: RAG_CORPUS_DIR or corpus/)")
    p.add_argument("--index", type=Path, help="index folder (default: RAG_INDEX_DIR or index/)")
    p.add_argument("--rebuild", action="store_true",
                   help="re-chunk and re-index every file (needed after changing the model or "
                        "chunking settings)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def format_report(report: IngestReport, corpus: Path, index: Path | str) -> str:
    f = report
    lines = [f"Ingested {corpus} into {index} in {f.seconds:.1f} s "
             f"(index generation {f.generation})", ""]
    rows = [("files", "added", len(f.added)), ("", "changed", len(f.changed)),
            ("", "unchanged", len(f.unchanged)), ("", "deleted", len(f.deleted)),
            ("", "failed", len(f.failed)),
            ("chunks", "added", f.chunks_added), ("", "removed", f.chunks_removed),
            ("", "embedded", f.embedded), ("", "truncated", f.truncated)]
    lines += [f"  {a:<7} {b:<10} {c:>7,}" for a, b, c in rows]
    for title, paths in (("added", f.added), ("changed", f.changed), ("deleted", f.deleted)):
        if paths and len(paths) <= 20:
            lines += ["", f"{title}:"] + [f"  {p}" for p in paths]
    if f.failed:
        width = min(max(len(p) for p, _ in f.failed), 50)
        lines += ["", "refused (the rest of the corpus was ingested):"]
        lines += [f"  {p:<{width}}  {r}" for p, r in f.failed]
    if f.moved_aside:
        lines += ["", f"The damaged database was moved aside to {Path(index) / f.moved_aside}; the "
                  "index was built anew."]
    if f.deferred:
        lines += ["", "changed while being read (kept as they were indexed; run again once "
                  "they are written):"] + [f"  {p}" for p in f.deferred]
    if not (f.added or f.changed or f.deleted or f.chunks_removed or f.embedded):
        refused = f" ({len(f.failed)} still refused, see above)" if f.failed else ""
        lines += ["", f"Index unchanged: {len(f.unchanged)} files unchanged{refused}, "
                  "0 chunks embedded."]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "python -m ingest") -> int:
    args = parse_args(argv, prog)
    overrides = {k: v for k, v in (("corpus_dir", args.corpus), ("index_dir", args.index)) if v}
    try:
        settings = IngestSettings.load(**overrides)
        report = run_ingest(settings, rebuild=args.rebuild,
                            progress=False if (args.quiet or args.json) else None)
    except (IndexStorageError, IndexDamagedError) as exc:  # the message names no path
        print(f"error: {exc} (index: {settings.index_name})", file=sys.stderr)
        return 2
    except IngestError as exc:  # a bad setting, corpus or index: one line that says why
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (sqlite3.Error, OSError) as exc:
        print(f"error: cannot use the index in {settings.index_dir}: {exc}. Check that the "
              "folder is writable and the disk not full; `--rebuild` into a new --index "
              "folder starts afresh.", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_json()))
    else:
        print(format_report(report, settings.corpus_dir, settings.index_name))
    return 0
