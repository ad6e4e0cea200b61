"""Answer one question in-process (no server needed) and print the answer with its sources.

`python -m app.ask "question"`, or `make ask Q="..."`."""
from __future__ import annotations

import argparse
import json
import sys
import textwrap

from app.errors import AppError
from app.service import Question, RagService
from app.settings import Settings


def format_answer(body: dict) -> str:
    lines = [textwrap.fill(body["answer"], width=100), ""]
    if body["abstained"]:
        lines.append("(abstained: no passage was relevant enough; the LLM was not called)")
    for c in body["citations"]:
        where = c["path"] + (f", page {c['page']}" if c["page"] else "")
        snippet = " ".join(c["text"].split())
        snippet = snippet if len(snippet) <= 160 else snippet[:157] + "..."
        lines.append(f"[{c['n']}] {where}, characters {c['start']}-{c['end']}")
        lines.append(f"    {snippet}")
    for sentence in body["unsupported"]:
        lines.append(f"unsupported by its sources: {sentence}")
    if body["invalid_citations"]:
        lines.append(f"removed citations to sources that do not exist: {body['invalid_citations']}")
    t = body["timings_ms"]
    lines.append(f"\n{body['generator']}{' (' + body['model'] + ')' if body['model'] else ''}, "
                 f"index generation {body['index_generation']}, {t['total']:.0f} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m app.ask", description=__doc__.splitlines()[0])
    p.add_argument("question")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--mode", choices=["hybrid", "dense", "lexical"], default="hybrid")
    p.add_argument("--json", action="store_true", help="print the /ask response body as JSON")
    args = p.parse_args(argv)
    if not args.question.strip():
        p.error("the question is empty")
    settings = Settings()
    service = RagService(settings)
    try:
        service.warm_up()  # load the models first, so the timings are the question's own
        body = service.ask(Question(args.question, args.top_k or settings.top_k, args.mode))
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(body, indent=2) if args.json else format_answer(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
