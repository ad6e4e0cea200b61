"""Answer quality on the labelled starter-corpus questions: `python -m app.eval starter`
(`make eval`).

The questions (app/eval/data/starter_eval.jsonl, shipped with the package) say which documents
hold each answer (`gold`)
and the key facts an answer must contain; unanswerable ones are near-misses (on the corpus'
topics) or off-topic. Each question goes through the service's own pipeline (the generator in
RAG_GENERATOR, extractive by default) on the index of RAG_CORPUS_DIR, brought up to date first.

Reported: hit@1/3/k (a gold document among the retrieved sources), citation precision (cited
passages from a gold document), key-fact recall of the answers, abstention precision and
recall, the unsupported-sentence rate; and every miss, classified:
  retrieval miss   no gold passage among the sources: fix chunking, retrieval or the corpus
  grounding miss   a gold passage was retrieved, but the answer lacks a key fact or has an
                   unsupported sentence: fix the prompt or the generator
  abstention error abstained on an answerable question, or answered an unanswerable one
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from app.answer import Answer
from app.errors import AppError
from app.eval.beir import EvalError
from app.service import Question, RagService
from app.settings import Settings
from app.text import sentence_spans
from ingest.sync import run_ingest
from ingest.text import fold

QUESTIONS = Path(__file__).resolve().parent / "data" / "starter_eval.jsonl"


@dataclass
class Result:
    """One question's outcome: the answer (None when the generator failed, with `error`),
    the paths of the sources retrieved, and the abstention signals."""

    row: dict
    answer: Answer | None
    sources: list[str]
    best: float = -1.0  # the best source's similarity to the question
    coverage: float = 0.0  # share of the question's term weight found in the sources
    error: str | None = None

    @property
    def abstained(self) -> bool:
        return self.answer is not None and self.answer.abstained

    @property
    def text(self) -> str:
        return self.answer.text if self.answer else ""

    @property
    def cited_paths(self) -> list[str]:
        return [c.path for c in self.answer.citations] if self.answer else []

    @property
    def unsupported(self) -> list[str]:
        return self.answer.unsupported if self.answer else []


def _norm(text: str) -> str:
    text = text.replace("\u2013", "-").replace("\u2014", "-").replace("\u00a0", " ")
    return fold(re.sub(r"\s+", " ", text).strip())


def load_questions(path: Path = QUESTIONS, split: str = "all") -> list[dict]:
    if not path.is_file():
        raise EvalError(f"{path} is missing")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return [r for r in rows if split == "all" or r["split"] == split]


def answer_all(service: RagService, rows: list[dict], top_k: int) -> list[Result]:
    """Each question through the pipeline: the sources, the abstention signals, the answer."""
    out = []
    for row in rows:
        r = None
        try:
            r = service.retrieve(Question(row["q"], top_k))
            out.append(Result(row, service.answer(r), [s.path for s in r.sources],
                              r.similarity, r.coverage))
        except AppError as exc:  # a failing backend is a result too, not the end of the run
            out.append(Result(row, None, [s.path for s in r.sources] if r else [],
                              r.similarity if r else -1.0, r.coverage if r else 0.0,
                              error=str(exc)))
    return out


def _hit(r: Result, k: int) -> bool:
    return bool(set(r.row["gold"]) & set(r.sources[:k]))


def _classify(r: Result, top_k: int) -> tuple[dict | None, float | None]:
    """The question's miss (None if it has none) and, for an answerable one, its key-fact
    recall."""
    row = r.row
    if not row["answerable"]:
        if not r.abstained:
            return _failure(r, "abstention error", f"answered an unanswerable {row['kind']} "
                            f"question (best similarity {r.best:.2f})"), None
        return None, None
    missing = [f for f in row["facts"] if _norm(f) not in _norm(r.text)]
    recall = 0.0 if r.abstained else 1 - len(missing) / len(row["facts"])
    if r.error is not None:
        return _failure(r, "grounding miss", f"generator failed: {r.error}"), recall
    if r.abstained:
        return _failure(r, "abstention error", "abstained on an answerable question (best "
                        f"similarity {r.best:.2f})"), recall
    if missing and not _hit(r, top_k):
        return _failure(r, "retrieval miss", f"missing {missing}; no gold document among "
                        f"{r.sources}"), recall
    if missing:
        return _failure(r, "grounding miss", f"missing {missing} although a gold passage was "
                        "retrieved"), recall
    if r.unsupported:
        return _failure(r, "grounding miss", f"{len(r.unsupported)} unsupported "
                        "sentence(s)"), recall
    return None, recall


def score(results: list[Result], top_k: int) -> dict:
    answerable = [r for r in results if r.row["answerable"]]
    unanswerable = [r for r in results if not r.row["answerable"]]
    cited = [p for r in answerable for p in r.cited_paths]
    gold_cited = sum(1 for r in answerable for p in r.cited_paths if p in r.row["gold"])
    recalls, failures = [], []
    for r in results:
        failure, recall = _classify(r, top_k)
        failures += [failure] if failure else []
        recalls += [recall] if recall is not None else []
    answered = [r for r in results if not r.abstained and r.text]
    sentences = sum(len(sentence_spans(r.text)) for r in answered)
    unsupported = sum(len(r.unsupported) for r in results if not r.abstained)
    abstained = [r for r in results if r.abstained]
    correct_abstentions = sum(1 for r in abstained if not r.row["answerable"])
    n = max(len(answerable), 1)
    metrics = {
        "questions": len(results), "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "hit@1": sum(_hit(r, 1) for r in answerable) / n,
        "hit@3": sum(_hit(r, 3) for r in answerable) / n,
        f"hit@{top_k}": sum(_hit(r, top_k) for r in answerable) / n,
        "citation_precision": gold_cited / len(cited) if cited else 0.0,
        "key_fact_recall": sum(recalls) / n,
        "abstention_precision": correct_abstentions / len(abstained) if abstained else 0.0,
        "abstention_recall": correct_abstentions / max(len(unanswerable), 1),
        "unsupported_rate": unsupported / sentences if sentences else 0.0,
    }
    counts = {k: sum(f["class"] == k for f in failures)
              for k in ("retrieval miss", "grounding miss", "abstention error")}
    return {"metrics": {k: round(v, 4) if isinstance(v, float) else v
                        for k, v in metrics.items()},
            "failures": counts, "missed": failures}


def _failure(r: Result, kind: str, detail: str) -> dict:
    return {"id": r.row["id"], "q": r.row["q"], "class": kind, "detail": detail}


def threshold_sweep(results: list[Result]) -> list[dict]:
    """False abstentions and false answers for each pair of abstention settings, from the
    similarity and term coverage each question already got (no re-run)."""
    rows = []
    for sim in (0.25, 0.30, 0.35, 0.40, 0.45, 0.50):
        for cov in (0.0, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60):
            abstains = [r.best < sim or r.coverage < cov for r in results]
            rows.append({
                "abstain_threshold": sim, "min_term_coverage": cov,
                "false_abstentions": sum(a and r.row["answerable"]
                                         for a, r in zip(abstains, results)),
                "false_answers": sum(not a and not r.row["answerable"]
                                     for a, r in zip(abstains, results))})
    return rows


def report(name: str, scored: dict, top_k: int, sweep: list[dict]) -> str:
    m = scored["metrics"]
    lines = [f"Starter corpus evaluation ({name}): {m['questions']} questions, "
             f"{m['answerable']} answerable, {m['unanswerable']} unanswerable", "",
             "| metric | value |", "|---|---|"]
    for key in ("hit@1", "hit@3", f"hit@{top_k}", "citation_precision", "key_fact_recall",
                "abstention_precision", "abstention_recall", "unsupported_rate"):
        lines.append(f"| {key} | {m[key]:.3f} |")
    c = scored["failures"]
    lines += ["", f"Misses: {c['retrieval miss']} retrieval, {c['grounding miss']} grounding, "
              f"{c['abstention error']} abstention"]
    for f in scored["missed"]:
        lines.append(f"  [{f['class']}] {f['id']} {f['q']}\n      {f['detail']}")
    lines += ["", "Abstention settings on these questions: false abstentions / false answers",
              "| similarity below \\ term coverage below | "
              + " | ".join(f"{c:.2f}" for c in sorted({r["min_term_coverage"] for r in sweep}))
              + " |", "|---" * (1 + len({r["min_term_coverage"] for r in sweep})) + "|"]
    for sim in sorted({r["abstain_threshold"] for r in sweep}):
        cells = [f"{r['false_abstentions']} / {r['false_answers']}" for r in sweep
                 if r["abstain_threshold"] == sim]
        lines.append(f"| {sim:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(split: str = "all", as_json: bool = False, settings: Settings | None = None,
        out: Callable[[str], None] = print) -> dict:
    settings = settings or Settings.load()
    rows = load_questions(split=split)
    service = RagService.from_settings(settings)
    try:
        # the index answers from the corpus as it is now (with the service's model: one load)
        run_ingest(settings, service.embedder, progress=False)
        service.warm_up()
        started = time.perf_counter()
        results = answer_all(service, rows, settings.top_k)
        seconds = time.perf_counter() - started
    finally:
        service.close()
    scored = score(results, settings.top_k)
    sweep = threshold_sweep(results)
    body = {"split": split, "generator": service.generator.name, "top_k": settings.top_k,
            "abstain_threshold": settings.abstain_threshold,
            "min_term_coverage": settings.min_term_coverage, **scored,
            "threshold_sweep": sweep, "seconds": round(seconds, 1)}
    if as_json:
        out(json.dumps(body))
    else:
        out(report(f"split {split}, generator {service.generator.name}, top_k "
                   f"{settings.top_k}, abstain below similarity {settings.abstain_threshold} "
                   f"or term coverage {settings.min_term_coverage}",
                   scored, settings.top_k, sweep) + f"\n\n({seconds:.1f} s)")
    return body
