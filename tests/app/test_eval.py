"""The evaluation harness: ranking metrics by hand, the BEIR runner end to end on a small
BEIR-format dataset (through the real ingest pipeline, hashing embedder), its errors, and the
starter-set scoring and failure classes."""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from app.eval.beir import EvalError, file_name, load_beir, run
from app.eval.metrics import mrr_at, ndcg_at, recall_at, summarize
from app.answer import Answer, Citation, Timings
from app.eval.starter import Result, load_questions, score
from app.settings import Settings
from ingest.loaders import load
from tests.helpers import PYTHON, ROOT, STARTER_CORPUS, subprocess_env


def test_metrics_by_hand():
    rels = {"a": 1, "b": 2, "z": 0}
    ranked = ["x", "b", "y", "a"]
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at(ranked, rels, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at(ranked, rels, 1) == 0.0
    assert recall_at(ranked, rels, 2) == 0.5 and recall_at(ranked, rels, 4) == 1.0
    assert mrr_at(ranked, rels, 10) == 0.5 and mrr_at(["z", "x"], rels, 10) == 0.0
    assert ndcg_at(["b", "a"], rels, 10) == pytest.approx(1.0)
    m = summarize({"q1": ["a"], "q2": []}, {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}})
    assert m == {"ndcg@10": 0.5, "recall@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}


def write_dataset(root: Path) -> Path:
    """Ten documents on distinct topics (one long enough to be chunked), five judged queries."""
    topics = {
        "d1": ("Otters", "Sea otters use rocks as tools to open shellfish on their bellies."),
        "d2": ("Volcanoes", "Basaltic lava from shield volcanoes flows far before it cools."),
        "d3": ("Bread", "Sourdough bread rises with wild yeast and lactic acid bacteria."),
        "d4": ("Comets", "A comet's tail points away from the sun, pushed by solar wind."),
        "d5": ("Bees", "Honey bees dance to tell their hive the direction of flowers."),
        "d/6": ("Glaciers", "Glaciers carve U-shaped valleys as they creep downhill. "
                + "Moraines of rubble mark where the ice once ended. " * 60),
        "d7": ("Violins", "Violin strings were once made of sheep gut, now often of steel."),
        "d8": ("Tides", "Spring tides happen when the sun and moon line up with the earth."),
        "d9": ("Cacti", "Cacti store water in thick stems and have spines instead of leaves."),
        "d10": ("Owls", "Owls turn their heads far because their eyes cannot move."),
    }
    root.mkdir()
    with open(root / "corpus.jsonl", "w") as f:
        for did, (title, text) in topics.items():
            f.write(json.dumps({"_id": did, "title": title, "text": text}) + "\n")
    queries = {"q1": "how do otters open shellfish", "q2": "what makes sourdough rise",
               "q3": "why does a comet tail point away from the sun",
               "q4": "moraines left by glaciers", "q5": "why owls turn their heads",
               "q6": "unjudged query about tides"}
    with open(root / "queries.jsonl", "w") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\nq3\td4\t1\nq4\td/6\t1\nq5\td10\t1\n"
        "q5\tmissing-doc\t1\n")
    return root


def test_beir_runner_end_to_end(tmp_path):
    data = write_dataset(tmp_path / "tiny")
    settings = Settings(index_dir=tmp_path / "index", embedder="hashing")
    printed = []
    body = run(data, as_json=True, settings=settings, out=printed.append)
    assert json.loads(printed[0]) == body
    assert body["dataset"] == "tiny" and body["queries"] == 5
    assert set(body["results"]) == {"lexical", "dense", "hybrid"}
    for mode, r in body["results"].items():
        assert set(r) == {"ndcg@10", "recall@10", "recall@100", "mrr@10", "qps"}
        assert r["qps"] > 0
    # every query names its document's distinctive words: BM25 finds each one first
    assert body["results"]["lexical"]["ndcg@10"] == 1.0
    assert body["results"]["hybrid"]["recall@10"] == 1.0
    assert body["chunks"] > 10  # the long glacier document was chunked
    # the documents went through the ingest pipeline as files, the title first
    work = tmp_path / "index" / "eval" / "tiny-200-32"
    doc = load(work / "corpus" / file_name("d/6"), (work / "corpus" / file_name("d/6")).read_bytes())
    assert doc.text.startswith("Glaciers\n\nGlaciers carve")
    again = run(data, as_json=True, settings=settings, out=lambda _: None)  # incremental
    assert again["results"]["lexical"] == {**body["results"]["lexical"],
                                           "qps": again["results"]["lexical"]["qps"]}


def test_beir_cli_json_and_errors(tmp_path):
    data = write_dataset(tmp_path / "tiny")
    env = subprocess_env(RAG_INDEX_DIR=str(tmp_path / "index"), RAG_EMBEDDER="hashing")
    out = subprocess.run([PYTHON, "-m", "app.eval", "beir", str(data), "--json"], cwd=ROOT,
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"]["hybrid"]["ndcg@10"] > 0.9
    table = subprocess.run([PYTHON, "-m", "app.eval", "beir", str(data)], cwd=ROOT,
                           capture_output=True, text=True, env=env, timeout=300)
    assert "| hybrid |" in table.stdout and "nDCG@10" in table.stdout
    (data / "queries.jsonl").unlink()
    bad = subprocess.run([PYTHON, "-m", "app.eval", "beir", str(data)], cwd=ROOT,
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "queries.jsonl is missing" in bad.stderr


@pytest.mark.parametrize("damage,message", [
    (lambda d: (d / "qrels" / "test.tsv").unlink(), "no judgments"),
    (lambda d: (d / "corpus.jsonl").write_text("{not json\n"), "not JSON"),
    (lambda d: (d / "qrels" / "test.tsv").write_text("q9\td1\t1\n"), "no judged query"),
])
def test_beir_dataset_errors_say_what_is_wrong(tmp_path, damage, message):
    data = write_dataset(tmp_path / "tiny")
    damage(data)
    with pytest.raises(EvalError, match=message):
        load_beir(data)


def test_the_starter_questions_are_well_formed():
    rows = load_questions()
    answerable = [r for r in rows if r["answerable"]]
    assert len(answerable) >= 40 and len(rows) - len(answerable) >= 10
    assert sum(r["kind"] == "near-miss" for r in rows) >= 5
    assert len({r["id"] for r in rows}) == len(rows)
    assert {r["split"] for r in rows} == {"dev", "test"}
    texts = {}
    for r in answerable:
        assert r["gold"] and r["facts"], r["id"]
        for path in r["gold"]:
            if path not in texts:
                p = STARTER_CORPUS / path
                texts[path] = " ".join(load(p, p.read_bytes()).text.split()).casefold()
        for fact in r["facts"]:  # each key fact is in a gold document, as written
            assert any(" ".join(fact.split()).casefold() in texts[g] for g in r["gold"]), \
                (r["id"], fact)
    covered = {g for r in answerable for g in r["gold"]}
    assert covered == {p.relative_to(STARTER_CORPUS).as_posix()
                       for p in STARTER_CORPUS.rglob("*") if p.is_file()}


def _result(answerable, sources, answer, citations=(), abstained=False, unsupported=(),
            best=0.6, kind="fact") -> Result:
    row = {"id": "x", "q": "?", "answerable": answerable, "gold": ["g.md"] if answerable else [],
           "facts": ["42 days"] if answerable else [], "kind": kind}
    cited = [Citation(n=i, path=p, page=None, start=0, end=1, text="x", score=0.5)
             for i, p in enumerate(citations, start=1)]
    return Result(row, Answer(text=answer, citations=cited, abstained=abstained,
                              unsupported=list(unsupported), invalid_citations=[],
                              generator="extractive", model=None, index_generation=1,
                              timings=Timings(embed=0, retrieve=0, generate=0, total=0)),
                  sources, best)


def test_starter_scoring_classifies_every_kind_of_miss():
    results = [
        _result(True, ["g.md"], "It takes 42 days [1].", ["g.md"]),                   # right
        _result(True, ["o.md"], "It takes 7 days [1].", ["o.md"]),                    # retrieval
        _result(True, ["o.md", "g.md"], "It takes 7 days [1].", ["o.md"]),            # grounding
        _result(True, ["g.md"], "42 days [1]. Cats fly.", ["g.md"], unsupported=["Cats fly."]),
        _result(True, ["g.md"], "", abstained=True, best=0.2),                        # abstention
        _result(False, ["o.md"], "Something [1].", ["o.md"], kind="near-miss"),       # abstention
        _result(False, ["o.md"], "", abstained=True, best=0.1, kind="off-topic"),      # right
    ]
    s = score(results, top_k=5)
    assert s["failures"] == {"retrieval miss": 1, "grounding miss": 2, "abstention error": 2}
    m = s["metrics"]
    assert m["hit@1"] == 0.6 and m["hit@3"] == 0.8
    assert m["key_fact_recall"] == 0.4
    assert m["citation_precision"] == 0.5
    assert m["abstention_precision"] == 0.5 and m["abstention_recall"] == 0.5
    assert m["unsupported_rate"] == pytest.approx(1 / 6, abs=1e-4)


def test_beir_sweep_lists_each_fusion_setting(tmp_path):
    data = write_dataset(tmp_path / "tiny")
    settings = Settings(index_dir=tmp_path / "index", embedder="hashing")
    printed = []
    body = run(data, do_sweep=True, settings=settings, out=printed.append)
    hybrid = [r for r in body["sweep"] if "mode" not in r]
    assert len(hybrid) == 36 and {r["rrf_k"] for r in hybrid} == {10, 20, 40, 60, 100, 200}
    assert {r["mode"] for r in body["sweep"] if "mode" in r} == {"lexical", "dense"}
    assert printed[0].count("\n| hybrid |") == 36


# -- app/eval/metrics.py against pytrec_eval (the definitions BEIR uses) ----------------------

def pytrec_scores(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict:
    """Mean nDCG@10, Recall@10, Recall@100 and MRR@10 by pytrec_eval, from ranked lists (a
    falling score keeps their order; MRR@10 is recip_rank over the top 10)."""
    import pytrec_eval

    def scored(cut: int | None) -> dict:
        return {q: {d: float(len(docs) - i) for i, d in enumerate(docs[:cut])}
                for q, docs in runs.items()}

    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10,100"})
    top10 = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    per_query = full.evaluate(scored(None))
    rr = top10.evaluate(scored(10))
    n = len(per_query)
    return {"ndcg@10": sum(m["ndcg_cut_10"] for m in per_query.values()) / n,
            "recall@10": sum(m["recall_10"] for m in per_query.values()) / n,
            "recall@100": sum(m["recall_100"] for m in per_query.values()) / n,
            "mrr@10": sum(m["recip_rank"] for m in rr.values()) / n}


def test_metrics_agree_with_pytrec_eval_on_random_runs():
    import random

    rng = random.Random(11)
    docs = [f"d{i}" for i in range(400)]
    runs, qrels = {}, {}
    for q in range(300):
        judged = rng.sample(docs, rng.randint(1, 12))
        grades = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        grades[judged[0]] = grades[judged[0]] or 1  # at least one relevant document
        pool = judged + rng.sample(docs, 150)
        runs[f"q{q}"] = list(dict.fromkeys(rng.sample(pool, rng.randint(1, 120))))
        qrels[f"q{q}"] = grades
    ours, theirs = summarize(runs, qrels), pytrec_scores(runs, qrels)
    assert ours == pytest.approx(theirs, abs=1e-9)
    assert 0.05 < ours["ndcg@10"] < 0.95  # a run with something to measure


def read_trec_run(path: Path) -> dict[str, list[str]]:
    runs: dict[str, list[tuple[int, str]]] = {}
    for line in path.read_text().splitlines():
        qid, _, doc, rank, _, _ = line.split()
        runs.setdefault(qid, []).append((int(rank), doc))
    return {q: [d for _, d in sorted(ranked)] for q, ranked in runs.items()}


def test_a_real_run_scores_the_same_in_pytrec_eval(tmp_path):
    """The runner's own rankings (the ingest pipeline, three modes), written as TREC run files
    and read back: pytrec_eval gives the figures the runner printed."""
    data = write_dataset(tmp_path / "tiny")
    # graded, several relevant documents per query: rankings are imperfect and grades count
    (data / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(
            f"{q}\t{d}\t{g}\n" for q, d, g in [
                ("q1", "d1", 2), ("q1", "d9", 1), ("q2", "d3", 2), ("q2", "d5", 1),
                ("q3", "d4", 1), ("q3", "d8", 2), ("q3", "d2", 0), ("q4", "d/6", 2),
                ("q4", "d2", 1), ("q5", "d10", 2), ("q5", "d7", 1), ("q5", "d1", 1)]))
    settings = Settings(index_dir=tmp_path / "index", embedder="hashing")
    body = run(data, as_json=True, settings=settings, out=lambda _: None,
               trec_runs=tmp_path / "runs")
    qrels = load_beir(data).qrels
    for mode, ours in body["results"].items():
        runs = read_trec_run(tmp_path / "runs" / f"{mode}.run")
        assert set(runs) == set(qrels)
        theirs = pytrec_scores(runs, qrels)
        assert {k: ours[k] for k in theirs} == pytest.approx(theirs, abs=5e-5), mode
    assert body["results"]["dense"]["ndcg@10"] < 1.0  # the hashing embedder misses some
