"""Answer one question and print the answer with its sources: in-process (no server needed),
or with --url from a running service.

`python -m app.ask "question"`, `make ask Q="..."`, `ragfirst ask "question"`."""
from __future__ import annotations

import argparse
import json
import sys
import textwrap

from pydantic import ValidationError

from app.citations import source_label
from app.errors import AppError
from app.service import Question, RagService
from app.settings import Settings
from ingest.settings import invalid_settings


def format_answer(body: dict) -> str:
    lines = [textwrap.fill(body["answer"], width=100), ""]
    if body["abstained"]:
        lines.append("(abstained: no passage was relevant enough; the LLM was not called)")
    for c in body["citations"]:
        where = source_label(c)
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


def auth_headers(settings: Settings) -> dict[str, str]:
    """What a client of this service sends when RAG_API_KEY is set."""
    key = settings.api_key
    return {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}


def ask_service(url: str, question: str, top_k: int | None, mode: str,
                headers: dict[str, str]) -> dict:
    """POST /ask to a running service; an HTTP error becomes an AppError with its detail."""
    import httpx

    payload = {"question": question, "mode": mode, **({"top_k": top_k} if top_k else {})}
    try:
        r = httpx.post(url.rstrip("/") + "/ask", json=payload, headers=headers, timeout=300)
    except httpx.HTTPError as exc:
        raise AppError(f"cannot reach {url}: {exc}") from exc
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code != 200:
        detail = body.get("detail", r.text) if isinstance(body, dict) else r.text
        raise AppError(f"HTTP {r.status_code} from {url}: "
                       f"{detail if isinstance(detail, str) else json.dumps(detail)}")
    if not isinstance(body, dict) or "answer" not in body:
        raise AppError(f"{url} answered something that is not an /ask response: "
                       f"{r.text[:200]!r}")
    return body


def main(argv: list[str] | None = None, prog: str = "python -m app.ask") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("question")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--mode", choices=["hybrid", "dense", "lexical"], default="hybrid")
    p.add_argument("--url", help="ask the service running at this URL (e.g. "
                                 "http://127.0.0.1:8000; sends RAG_API_KEY if set) instead "
                                 "of loading the index in-process")
    p.add_argument("--json", action="store_true", help="print the /ask response body as JSON")
    args = p.parse_args(argv)
    if not args.question.strip():
        p.error("the question is empty")
    try:
        settings = Settings()
        if args.url:
            body = ask_service(args.url, args.question, args.top_k, args.mode,
                               auth_headers(settings))
        else:
            service = RagService(settings)
            service.warm_up()  # load the models first, so the timings are the question's own
            body = service.ask(Question(args.question, args.top_k or settings.top_k,
                                        args.mode))
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"error: {invalid_settings(exc)}", file=sys.stderr)
        return 2
    print(json.dumps(body, indent=2) if args.json else format_answer(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
