"""Ranking metrics, as BEIR computes them (pytrec_eval's definitions): graded relevance, linear
gain, log2 discount; documents judged 0 count as not relevant. Ours rather than pytrec_eval's
C extension at run time (four short functions); tests/app/test_eval.py checks them against
pytrec_eval on random graded runs and on the BEIR runner's own run files."""
from __future__ import annotations

import math
from typing import Mapping, Sequence


def ndcg_at(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    relevant = {d for d, r in rels.items() if r > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr_at(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    for i, d in enumerate(ranked[:k]):
        if rels.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def summarize(runs: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]) -> dict:
    """Mean nDCG@10, Recall@10, Recall@100, MRR@10 over the judged queries."""
    qids = [q for q in qrels if any(r > 0 for r in qrels[q].values())]
    n = len(qids)
    return {
        "ndcg@10": sum(ndcg_at(runs.get(q, []), qrels[q], 10) for q in qids) / n,
        "recall@10": sum(recall_at(runs.get(q, []), qrels[q], 10) for q in qids) / n,
        "recall@100": sum(recall_at(runs.get(q, []), qrels[q], 100) for q in qids) / n,
        "mrr@10": sum(mrr_at(runs.get(q, []), qrels[q], 10) for q in qids) / n,
    }
