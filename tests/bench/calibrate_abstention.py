"""Calibrate RAG_ABSTAIN_THRESHOLD: the best passage's cosine similarity for labelled questions
(tests/data/abstention_questions.jsonl), answerable or not, on the index in RAG_INDEX_DIR.
Prints each question's score and, per candidate threshold, false abstentions and false answers.
Run: `make ingest && .venv/bin/python -m tests.bench.calibrate_abstention`."""
from __future__ import annotations

import json
from pathlib import Path

from app.service import Question, RagService
from app.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data" / "abstention_questions.jsonl"


def main() -> None:
    settings = Settings()
    service = RagService.from_settings(settings)
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    scored = []
    for row in rows:
        p = service.retrieve(Question(row["q"], settings.top_k))
        scored.append((max((s.similarity for s in p.sources), default=-1.0), row))
    for best, row in sorted(scored, key=lambda x: x[0]):
        print(f"{best:.3f} {'answerable  ' if row['answerable'] else 'unanswerable'} {row['q']}")
    print("\nthreshold  false-abstentions  false-answers")
    for t in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5):
        fa = sum(1 for b, r in scored if r["answerable"] and b < t)
        fn = sum(1 for b, r in scored if not r["answerable"] and b >= t)
        mark = "  <- current" if abs(t - settings.abstain_threshold) < 1e-9 else ""
        print(f"{t:9.2f}  {fa:17d}  {fn:13d}{mark}")


if __name__ == "__main__":
    main()
