"""What runs beside a question's embedding, in-process, on each store: the question's word
weights go beside it when the embedder leaves a core free (ONNX, a remote server), and wait for
it when the embedder takes every core (torch's OpenMP team, which work beside it slows)."""
from __future__ import annotations

import threading

import pytest

import app.service as service_module
from app.generators.extractive import ExtractiveGenerator
from app.service import Question, RagService
from ingest.embedders import HashingEmbedder
from tests.helpers import REFUND_QUESTION


class WatchedEmbedder(HashingEmbedder):
    """Says whether it takes every core; while it embeds a question it waits (up to 0.5 s)
    for the word weights, so that weights computed beside it are seen to be."""

    def __init__(self, uses_all_cores: bool) -> None:
        super().__init__()
        self.uses_all_cores = uses_all_cores
        self.embedding = False
        self.started, self.weighed = threading.Event(), threading.Event()

    def embed(self, texts, *, urgent=False):
        if urgent and not self.weighed.is_set():  # the question's own embedding
            self.embedding = True
            self.started.set()
            self.weighed.wait(0.1 if self.uses_all_cores else 0.5)
            self.embedding = False
        return super().embed(texts, urgent=urgent)


@pytest.mark.parametrize("all_cores", [False, True], ids=["a-core-free", "every-core"])
def test_the_word_weights_run_beside_the_embedding_only_when_it_leaves_a_core_free(
        small_index, monkeypatch, all_cores: bool) -> None:
    embedder = WatchedEmbedder(all_cores)
    during_embedding: list[bool] = []
    weigh = service_module.term_weights

    def watched(question, snapshot):
        embedder.started.wait(0.5)  # submitted before the embedding: wait for it to start
        during_embedding.append(embedder.embedding)
        embedder.weighed.set()
        return weigh(question, snapshot)

    monkeypatch.setattr(service_module, "term_weights", watched)
    service = RagService.from_settings(small_index, embedder, ExtractiveGenerator())
    try:
        answer = service.ask(Question(REFUND_QUESTION, 3))
    finally:
        service.close()
    assert during_embedding == [not all_cores]
    assert not answer.abstained and answer.citations  # the weights still judged the answer
