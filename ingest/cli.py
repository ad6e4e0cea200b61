"""`python -m ingest`: bring the index in step with the corpus and print what changed; with
`--copy-to URL`, copy the index to another store instead (ingest/copy.py)."""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from ingest.collections import CollectionConfig, collection_configs, named, settings_for
from ingest.copy import CopyReport, copy_index
from ingest.embedders import build_embedder
from ingest.errors import IndexDamagedError, IndexStorageError, IngestError, SettingsError
from ingest.settings import IngestSettings
from ingest.store.urls import settings_for_url, shown_url
from ingest.sync import IngestReport, run_ingest


def parse_args(argv: list[str] | None, prog: str = "python -m ingest") -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Ingest the corpus into the index incrementally: unchanged files cost "
                    "nothing, changed files are replaced, deleted files are removed.")
    p.add_argument("--corpus", type=Path, help="corpus folder (default: RAG_CORPUS_DIR or corpus/)")
    p.add_argument("--index", type=Path, help="index folder (default: RAG_INDEX_DIR or index/)")
    p.add_argument("--collection", action="append", metavar="NAME",
                   help="ingest this collection of RAG_COLLECTIONS_FILE (repeatable; default: "
                        "every collection)")
    p.add_argument("--rebuild", action="store_true",
                   help="re-chunk and re-index every file (needed after changing the model or "
                        "chunking settings)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    copy = p.add_argument_group(
        "copying to another store (nothing is embedded: the stored vectors are copied)")
    copy.add_argument("--copy-to", metavar="URL",
                      help="copy the index (RAG_STORE, --index) to postgresql://... or "
                           "sqlite:///absolute/index-folder (sqlite:relative/folder) instead of "
                           "ingesting")
    copy.add_argument("--copy-to-schema", metavar="NAME",
                      help="the schema of a postgresql:// target (default RAG_DATABASE_SCHEMA)")
    copy.add_argument("--replace", action="store_true",
                      help="let the copy overwrite a target that already holds an index")
    args = p.parse_args(argv)
    if args.copy_to and args.rebuild:
        p.error("--copy-to copies the index as it is: it cannot be combined with --rebuild")
    if (args.replace or args.copy_to_schema) and not args.copy_to:
        p.error("--replace and --copy-to-schema go with --copy-to")
    return args


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


def format_copy(report: CopyReport, target: IngestSettings) -> str:
    f = report
    lines = [f"Copied {f.source} to {f.target} in {f.seconds:.1f} s (index generation "
             f"{f.generation}, id {f.index_id}); nothing was embedded", ""]
    rows = [("documents", f.documents), ("chunks", f.chunks), ("vectors", f.vectors),
            ("refused", f.refused)]
    lines += [f"  {a:<10} {b:>9,}" for a, b in rows]
    if f.replaced:
        lines += ["", f"It replaced the {f.replaced:,} documents the target held."]
    if f.moved_aside:
        lines += ["", f"The target's damaged database was moved aside to {f.moved_aside}."]
    use = (f"RAG_STORE=postgres, RAG_DATABASE_URL=<the URL>, RAG_DATABASE_SCHEMA="
           f"{target.database_schema}" if target.store == "postgres" else
           f"RAG_STORE=sqlite, RAG_INDEX_DIR={target.index_dir}")
    return "\n".join(lines + ["", f"To serve or ingest it: {use}"])


def _copy(args: argparse.Namespace, settings: IngestSettings) -> str:
    target = settings_for_url(settings, args.copy_to, args.copy_to_schema)
    report = copy_index(settings, target, replace=args.replace)
    return json.dumps(report.as_json()) if args.json else format_copy(report, target)


def main(argv: list[str] | None = None, prog: str = "python -m ingest") -> int:
    args = parse_args(argv, prog)
    overrides = {k: v for k, v in (("corpus_dir", args.corpus), ("index_dir", args.index)) if v}
    try:
        settings = IngestSettings.load(**overrides)
        chosen = _chosen(args, settings)
        embedder = None if args.copy_to else build_embedder(settings)  # loads when used
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    several = settings.collections_file is not None
    codes, reports = [], {}
    for config in chosen:  # one collection failing does not stop the others
        code, out = _one(args, settings_for(settings, config), embedder)
        codes.append(code)
        if args.json and code == 0 and several:
            reports[config.name] = json.loads(out)
        elif code == 0:
            print(f"collection {config.name}: {out}" if several else out)
    if reports:
        print(json.dumps({"collections": reports}))
    return max(codes)


def _chosen(args: argparse.Namespace, settings: IngestSettings) -> list[CollectionConfig]:
    """The collections to ingest: --collection's (repeatable), or all of them."""
    configs = collection_configs(settings)
    if settings.collections_file is not None and (args.corpus or args.index):
        raise SettingsError("--corpus and --index do not go with RAG_COLLECTIONS_FILE: each "
                            "collection has its folders there; choose one with --collection")
    if not args.collection:
        if args.copy_to and len(configs) > 1:
            raise SettingsError("--copy-to copies one collection: name it with --collection")
        return configs
    return [named(configs, n) for n in dict.fromkeys(args.collection)]


def _one(args: argparse.Namespace, settings: IngestSettings, embedder) -> tuple[int, str]:
    """Ingest (or copy) one collection: (exit code, what to print); errors go to stderr."""
    try:
        if args.copy_to:
            return 0, _copy(args, settings)
        report = run_ingest(settings, embedder, rebuild=args.rebuild,
                            progress=False if (args.quiet or args.json) else None)
    except (IndexStorageError, IndexDamagedError) as exc:  # the message names no path
        where = (f"copying {settings.index_name} to {shown_url(args.copy_to)}" if args.copy_to else
                 f"index: {settings.index_name}")
        print(f"error: {exc} ({where})", file=sys.stderr)
        return 2, ""
    except IngestError as exc:  # a bad setting, corpus or index: one line that says why
        print(f"error: {exc}", file=sys.stderr)
        return 2, ""
    except (sqlite3.Error, OSError) as exc:
        print(f"error: cannot use the index in {settings.index_dir}: {exc}. Check that the "
              "folder is writable and the disk not full; `--rebuild` into a new --index "
              "folder starts afresh.", file=sys.stderr)
        return 2, ""
    if args.json:
        return 0, json.dumps(report.as_json())
    return 0, format_report(report, settings.corpus_dir, settings.index_name)
