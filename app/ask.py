"""Answer one question and print the answer with its sources: in-process (no server needed),
or with --url from a running service.

`python -m app.ask "question"`, `make ask Q="..."`, `ragfirst ask "question"`. `ragfirst chat`
(app.chat) asks and prints through the same functions."""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Sequence

from pydantic import ValidationError

from app.answer import Answer
from app.conversation import Turn
from app.errors import AppError
from app.retrieval import Mode
from app.service import Question, RagService
from app.settings import Settings
from ingest.collections import DEFAULT, collection_settings
from ingest.errors import IngestError


def format_answer(answer: Answer, question: str | None = None) -> str:
    """The answer, its sources and notes, and a footer. Given the `question` asked, a
    follow-up that was searched in another form says what was searched."""
    lines = [textwrap.fill(answer.text, width=100), ""]
    if answer.abstained:
        lines.append("(abstained: no passage was relevant enough; the LLM was not called)")
    for c in answer.citations:
        snippet = " ".join(c.text.split())
        snippet = snippet if len(snippet) <= 160 else snippet[:157] + "..."
        lines.append(f"[{c.n}] {c.label}, characters {c.start}-{c.end}")
        lines.append(f"    {snippet}")
    for sentence in answer.unsupported:
        lines.append(f"unsupported by its sources: {sentence}")
    if answer.invalid_citations:
        lines.append(f"removed citations to sources that do not exist: {answer.invalid_citations}")
    if question is not None and answer.retrieval_query not in ("", question):
        lines.append(f"searched: {answer.retrieval_query}")
    model = f" ({answer.model})" if answer.model else ""
    lines.append(f"\n{answer.generator}{model}, index generation {answer.index_generation}, "
                 f"{answer.timings.total:.0f} ms")
    return "\n".join(lines)


def auth_headers(settings: Settings) -> dict[str, str]:
    """What a client of this service sends when RAG_API_KEY is set."""
    key = settings.api_key
    return {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}


def local_service(settings: Settings, say_loading: bool = False) -> RagService:
    """The service in-process, ready to answer: the index is there (IndexNotReady says what
    to do before any model loads), then the models are loaded (`say_loading`: saying so on
    stderr), so the timings are the questions' own. The caller closes it."""
    service = RagService.from_settings(settings)
    try:
        service.index.current()
        if say_loading:
            print("loading the models...", file=sys.stderr, flush=True)
        service.warm_up()
    except BaseException:
        service.close()
        raise
    return service


def ask_service(url: str, question: str, top_k: int | None, mode: str,
                headers: dict[str, str], history: Sequence[Turn] = (),
                collection: str | None = None) -> Answer:
    """POST /ask to a running service (with the turns before the question, if any); an HTTP
    error becomes an AppError with its detail."""
    import httpx

    payload = {"question": question, "mode": mode, **({"top_k": top_k} if top_k else {}),
               **({"collection": collection} if collection else {})}
    if history:
        payload["history"] = [{"role": t.role, "content": t.content} for t in history]
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
    try:
        return Answer.model_validate(body)
    except ValidationError:
        raise AppError(f"{url} answered something that is not an /ask response: "
                       f"{r.text[:200]!r}") from None


def main(argv: list[str] | None = None, prog: str = "python -m app.ask") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("question")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.HYBRID.value)
    p.add_argument("--url", help="ask the service running at this URL (e.g. "
                                 "http://127.0.0.1:8000; sends RAG_API_KEY if set) instead "
                                 "of loading the index in-process")
    p.add_argument("--collection", metavar="NAME",
                   help="ask this collection (RAG_COLLECTIONS_FILE; default: default)")
    p.add_argument("--json", action="store_true", help="print the /ask response body as JSON")
    args = p.parse_args(argv)
    if not args.question.strip():
        p.error("the question is empty")
    try:
        settings = Settings.load()
        if args.url:
            answer = ask_service(args.url, args.question, args.top_k, args.mode,
                                 auth_headers(settings), collection=args.collection)
        else:
            if args.collection or settings.collections_file:
                settings = collection_settings(settings, args.collection or DEFAULT)
            service = local_service(settings)
            try:
                answer = service.ask(Question(args.question, args.top_k or settings.top_k,
                                              Mode(args.mode)))
            finally:
                service.close()
    except (AppError, IngestError) as exc:  # a setting, the index, the LLM: one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer.to_json(), indent=2) if args.json else format_answer(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
