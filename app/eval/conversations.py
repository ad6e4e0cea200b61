"""Follow-up questions on the labelled conversations: `python -m app.eval conversations`
(part of `make eval`).

Each conversation (app/eval/data/starter_conversations.jsonl, shipped with the package) is
a history of turns and a last question, with the documents that answer it (`gold`) and its
key facts, or none when the corpus cannot answer it. Kinds: `follow-up` (the last question
cannot be retrieved alone), `topic-switch` (it stands alone, on another subject),
`standalone` (it stands alone, on the same subject) and `unanswerable`.

The last question goes through the service's pipeline twice: with its history, and alone.
Reported per kind: the share rewritten (the rule that decides which questions lean on the
conversation, measured), and for both: hit@1, hit@k, key-fact recall, citation precision and the
share abstained; and what the rewrite of a follow-up costs (app.conversation, without the
LLM: the generator in RAG_GENERATOR condenses when it can, and its time shows in /ask's).
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Callable

from app.conversation import Turn, retrieval_query
from app.eval.starter import QUESTIONS, Result, load_questions, score
from app.errors import AppError
from app.service import Question, RagService
from app.settings import Settings
from ingest.sync import run_ingest

CONVERSATIONS = QUESTIONS.parent / "starter_conversations.jsonl"
KINDS = ("follow-up", "topic-switch", "standalone", "unanswerable")


def history_of(row: dict) -> tuple[Turn, ...]:
    return tuple(Turn(t["role"], t["content"]) for t in row["history"])


def _result(service: RagService, row: dict, q: Question) -> Result:
    r = None
    try:
        r = service.retrieve(q)
        return Result(row, service.answer(r), [s.path for s in r.sources], r.similarity,
                      r.coverage)
    except AppError as exc:  # a failing backend is a result too, not the end of the run
        return Result(row, None, [s.path for s in r.sources] if r else [], error=str(exc))


def rewrite_microseconds(rows: list[dict], repeat: int = 20) -> list[float]:
    """What the model-free rewrite takes per conversation (best of `repeat`, in µs)."""
    out = []
    for row in rows:
        history = history_of(row)
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            retrieval_query(row["q"], history)
            best = min(best, time.perf_counter() - t0)
        out.append(best * 1e6)
    return out


def evaluate(service: RagService, rows: list[dict], top_k: int) -> dict:
    """Per kind, the scores with history and alone; the rewrites; the rewrite's cost."""
    with_history, alone, queries = [], [], []
    for row in rows:
        r = _result(service, row, Question(row["q"], top_k, history=history_of(row)))
        with_history.append(r)
        queries.append({"id": row["id"], "kind": row["kind"], "q": row["q"],
                        "retrieval_query": r.answer.retrieval_query if r.answer else None})
        alone.append(_result(service, row, Question(row["q"], top_k)))
    kinds = {}
    for kind in KINDS:
        idx = [i for i, row in enumerate(rows) if row["kind"] == kind]
        if idx:
            rewritten = sum(queries[i]["retrieval_query"] not in (None, rows[i]["q"])
                            for i in idx)
            kinds[kind] = {"conversations": len(idx), "rewritten": round(rewritten / len(idx), 4),
                           "with_history": _summary([with_history[i] for i in idx], top_k),
                           "alone": _summary([alone[i] for i in idx], top_k)}
    us = rewrite_microseconds(rows)
    return {"kinds": kinds, "queries": queries,
            "rewrite_us": {"p50": round(statistics.median(us), 1),
                           "p95": round(sorted(us)[int(0.95 * (len(us) - 1))], 1)}}


def _summary(results: list[Result], top_k: int) -> dict:
    m = score(results, top_k)["metrics"]
    share = sum(r.abstained for r in results) / len(results)
    keep = ("hit@1", f"hit@{top_k}", "key_fact_recall", "citation_precision")
    return {**{k: m[k] for k in keep}, "abstained": round(share, 4),
            "misses": [r.row["id"] for r in results if _missed(r, top_k)]}


def _missed(r: Result, top_k: int) -> bool:
    if not r.row["answerable"]:
        return not r.abstained
    return r.abstained or not set(r.row["gold"]) & set(r.sources[:top_k])


def report(body: dict) -> str:
    k = body["top_k"]
    lines = [f"Conversations (split {body['split']}, generator {body['generator']}, "
             f"top_k {k}): the last question with its history / alone", "",
             f"| kind | n | rewritten | hit@1 | hit@{k} | key-fact recall | citation precision "
             "| abstained |", "|---|---|---|---|---|---|---|---|"]
    for kind, v in body["kinds"].items():
        w, a = v["with_history"], v["alone"]
        cells = [f"{w[m]:.3f} / {a[m]:.3f}" for m in
                 ("hit@1", f"hit@{k}", "key_fact_recall", "citation_precision", "abstained")]
        lines.append(f"| {kind} | {v['conversations']} | {v['rewritten']:.3f} | "
                     + " | ".join(cells) + " |")
    for kind, v in body["kinds"].items():
        if v["with_history"]["misses"]:
            lines.append(f"  {kind} misses with history: {', '.join(v['with_history']['misses'])}")
    r = body["rewrite_us"]
    lines += ["", f"Model-free rewrite: p50 {r['p50']:.0f} µs, p95 {r['p95']:.0f} µs per "
                  "conversation"]
    return "\n".join(lines)


def run(split: str = "all", as_json: bool = False, settings: Settings | None = None,
        out: Callable[[str], None] = print, path: Path = CONVERSATIONS) -> dict:
    settings = settings or Settings.load()
    rows = load_questions(path, split=split)
    service = RagService.from_settings(settings)
    try:
        run_ingest(settings, service.embedder, progress=False)
        service.warm_up()
        started = time.perf_counter()
        body = {"split": split, "generator": service.generator.name, "top_k": settings.top_k,
                **evaluate(service, rows, settings.top_k),
                "seconds": round(time.perf_counter() - started, 1)}
    finally:
        service.close()
    out(json.dumps(body) if as_json else report(body) + f"\n\n({body['seconds']:.1f} s)")
    return body
