"""`python -m app.eval beir PATH [--json]` (make eval-beir DATASET=PATH) and
`python -m app.eval starter|conversations [--split dev|test] [--json]` (make eval runs both)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.eval.beir import EvalError
from ingest.errors import IngestError


def main(argv: list[str] | None = None, prog: str = "python -m app.eval") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("beir", help="retrieval quality on a BEIR-format dataset")
    b.add_argument("path", type=Path, help="folder with corpus.jsonl, queries.jsonl, qrels/")
    b.add_argument("--split", default="test", help="qrels/<split>.tsv (default: test)")
    b.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    b.add_argument("--trec-runs", type=Path, metavar="FOLDER",
                   help="also write each mode's ranking there as a TREC run file (<mode>.run)")
    b.add_argument("--sweep", action="store_true",
                   help="hybrid nDCG@10 over fusion constants and weights (for tuning)")
    s = sub.add_parser("starter", help="answer quality on the labelled starter questions")
    s.add_argument("--split", choices=["dev", "test", "all"], default="all")
    s.add_argument("--json", action="store_true", help="one JSON object instead of a report")
    c = sub.add_parser("conversations", help="follow-up questions on the labelled "
                                             "conversations, with their history and alone")
    c.add_argument("--split", choices=["dev", "test", "all"], default="all")
    c.add_argument("--json", action="store_true", help="one JSON object instead of a report")
    args = p.parse_args(argv)
    try:
        if args.command == "beir":
            from app.eval.beir import run
            run(args.path, split=args.split, as_json=args.json, do_sweep=args.sweep,
                trec_runs=args.trec_runs)
        elif args.command == "conversations":
            from app.eval.conversations import run as run_conversations
            run_conversations(split=args.split, as_json=args.json)
        else:
            from app.eval.starter import run as run_starter
            run_starter(split=args.split, as_json=args.json)
    except (EvalError, IngestError) as exc:  # the dataset, a setting, the index
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
