"""The remote embedder (RAG_EMBEDDER=openai): its settings, the client against the fault server
(tests/fake_embeddings.py, a real HTTP server), an ingest that meets each fault (the index's last
commit still answers), and the vectors of llama.cpp's real server against the local model."""
from __future__ import annotations

import httpx
import numpy as np
import pytest

from ingest.embedders import OpenAIEmbedder, RemoteOptions, build_embedder
from ingest.errors import EmbedderUnavailableError, IndexMismatchError, SettingsError
from ingest.settings import DEFAULT_MODEL, IngestSettings
from ingest.store.sqlite.snapshot import SqliteSnapshot
from ingest.sync import run_ingest
from tests.embed_server import sample_texts
from tests.fake_embeddings import EMBED_DIM, fake_vectors
from tests.fake_llm import FakeLLM, start_fake_llm
from tests.helpers import state, write

TEXTS = ["The refund window is thirty days.", "Glaciers carve valleys over millennia.",
         "Annual plans can be refunded in full.", "é ü 漢字 🙂", "x"]


def remote(base_url: str, **options) -> OpenAIEmbedder:
    options = {"tokenizer": DEFAULT_MODEL, "retries": 2, "timeout_s": 10.0, **options}
    return OpenAIEmbedder(RemoteOptions(base_url, "fake-model", **options))


# -- settings --------------------------------------------------------------------------------

@pytest.mark.parametrize("env, needle", [
    ({}, "RAG_EMBED_BASE_URL"),
    ({"embed_base_url": "gpu-box:8080/v1"}, "RAG_EMBED_BASE_URL"),
    ({"embed_base_url": "http://gpu-box:8080/v1"}, "RAG_EMBED_MODEL"),
    ({"embed_base_url": "http://gpu-box:8080/v1", "embed_model": "nomic-embed-text"},
     "RAG_EMBED_TOKENIZER"),
    ({"embed_base_url": "http://gpu-box/v1", "embed_model": "m", "embed_tokenizer": "t",
      "embed_timeout_s": 0}, "RAG_EMBED_TIMEOUT_S"),
    ({"embed_base_url": "http://gpu-box/v1", "embed_model": "m", "embed_tokenizer": "t",
      "embed_max_tokens": 3}, "RAG_EMBED_MAX_TOKENS"),
])
def test_bad_remote_settings_are_one_line_naming_the_variable(env, needle):
    with pytest.raises(SettingsError) as caught:
        IngestSettings.load(embedder="openai", **env)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_the_tokenizer_and_the_window_are_known_for_the_bundled_minilm_and_openai():
    for model, tokenizer, window in (("all-MiniLM-L6-v2", DEFAULT_MODEL, 254),
                                     ("all-minilm", DEFAULT_MODEL, 254),
                                     ("text-embedding-3-small", "cl100k_base", 8191)):
        s = IngestSettings.load(embedder="openai", embed_base_url="http://h:1/v1",
                                embed_model=model)
        embedder = build_embedder(s)
        assert embedder.model_id == f"openai:{model}@h:1"
        assert embedder.options.tokenizer == tokenizer and embedder.max_tokens == window
    capped = build_embedder(s.model_copy(update={"embed_max_tokens": 500}))
    assert capped.max_tokens == 500


def test_openai_api_key_stands_in_only_for_openai_itself(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    common = {"embedder": "openai", "embed_model": "text-embedding-3-small"}
    at_openai = IngestSettings.load(embed_base_url="https://api.openai.com/v1", **common)
    assert at_openai.embed_api_key.get_secret_value() == "sk-openai"
    elsewhere = IngestSettings.load(embed_base_url="http://gpu-box:8080/v1", **common)
    assert elsewhere.embed_api_key is None  # never sent to another server
    monkeypatch.setenv("RAG_EMBED_API_KEY", "sk-own")
    own = IngestSettings.load(embed_base_url="https://api.openai.com/v1", **common)
    assert own.embed_api_key.get_secret_value() == "sk-own"


# -- the client, against the fault server ------------------------------------------------------

def test_vectors_are_placed_by_index_normalized_and_batched(fake_llm: FakeLLM):
    url = fake_llm.base_url("ok")
    embedder = remote(url, batch_size=2, api_key="sk-test")
    texts = [f"text number {i} about refunds" for i in range(5)]
    vectors = embedder.embed(texts)
    expected = np.asarray(fake_vectors(texts), dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)  # the server lists them reversed
    assert vectors.dtype == np.float32 and embedder.dim == EMBED_DIM
    sent = fake_llm.requests(url)
    assert [r.body["input"] for r in sent] == [texts[0:2], texts[2:4], texts[4:5]]
    assert {r.body["model"] for r in sent} == {"fake-model"}
    assert {r.headers["authorization"] for r in sent} == {"Bearer sk-test"}


def test_retries_5xx_then_succeeds(fake_llm: FakeLLM):
    url = fake_llm.base_url("flaky")
    assert remote(url).embed(TEXTS).shape == (len(TEXTS), EMBED_DIM)
    assert fake_llm.attempts(url) == 3


def test_429_then_success_waits_as_retry_after_says(fake_llm: FakeLLM):
    url = fake_llm.base_url("429once")
    assert remote(url).embed(TEXTS).shape == (len(TEXTS), EMBED_DIM)
    first, second = fake_llm.requests(url)
    assert second.at - first.at >= 1.0  # "Retry-After: 1", honoured


def test_a_retry_after_past_the_deadline_fails_at_once(fake_llm: FakeLLM):
    url = fake_llm.base_url("429long")
    with pytest.raises(EmbedderUnavailableError, match="HTTP 429.*3600.0 s would pass the 10 s"):
        remote(url).embed(TEXTS)
    assert fake_llm.attempts(url) == 1


@pytest.mark.parametrize("mode, needle, attempts", [
    ("http500", r"HTTP 500: .*internal boom.* \(after 3 attempts\)", 3),
    ("401", "HTTP 401: .*Incorrect API key.*; check RAG_EMBED_API_KEY", 1),
    ("malformed", "malformed JSON", 1),
    ("nodata", "without usable embeddings: no data list", 1),
    ("mixeddim", r"different sizes \[383, 384\]", 1),
    ("hang", "no answer within the 1 s deadline", 1),
])
def test_each_fault_is_one_clear_line_naming_the_url(fake_llm: FakeLLM, mode, needle, attempts):
    url = fake_llm.base_url(mode)
    with pytest.raises(EmbedderUnavailableError, match=needle) as caught:
        remote(url, timeout_s=1.0 if mode == "hang" else 10.0).embed(TEXTS)
    message = str(caught.value)
    assert message.startswith(f"embedding server {url}/embeddings: ") and "\n" not in message
    assert fake_llm.attempts(url) == attempts


def test_the_deadline_is_per_batch_not_per_call(fake_llm: FakeLLM):
    """Five batches of 0.5 s each under a 2 s deadline: each batch has its own, so an ingest's
    big checkpoint is not failed for being many batches."""
    url = fake_llm.base_url("slow")
    assert remote(url, batch_size=1, timeout_s=2.0).embed(TEXTS).shape == (5, EMBED_DIM)
    assert fake_llm.attempts(url) == 5


def test_a_refused_connection_is_retried_then_named(fake_llm: FakeLLM):
    url = fake_llm.closed_url()
    with pytest.raises(EmbedderUnavailableError, match=r"cannot connect: .*after 3 attempts"):
        remote(url).embed(TEXTS)


def test_a_model_that_changes_size_under_its_name_is_refused(fake_llm: FakeLLM):
    url = fake_llm.base_url("switch")
    embedder = remote(url)
    embedder.embed(TEXTS)
    fake_llm.set_mode(url, "wrongdim")
    with pytest.raises(IndexMismatchError, match=f"{2 * EMBED_DIM} numbers where it answered "
                                                 f"{EMBED_DIM}.*--rebuild"):
        embedder.embed(TEXTS)


def test_texts_over_the_window_are_cut_here_not_by_the_server(fake_llm: FakeLLM):
    url = fake_llm.base_url("ok")
    embedder = remote(url, max_tokens=20)
    long = "refunds are possible within thirty days of the purchase " * 10
    embedder.embed(["short", long])
    sent = fake_llm.requests(url)[0].body["input"]
    assert sent[0] == "short" and long.startswith(sent[1]) and len(sent[1]) < len(long)
    assert embedder.count_tokens([sent[1]]) == [20]


# -- an ingest that meets a fault: the last commit still answers -------------------------------

def _committed(settings: IngestSettings) -> tuple[dict, int]:
    with SqliteSnapshot.open(settings.index_dir) as snap:
        generation = snap.generation
    return state(settings.index_dir), generation


def _index_then_add(settings: IngestSettings, embedder: OpenAIEmbedder) -> tuple[dict, int]:
    write(settings.corpus_dir, "refunds.md", "# Refunds\n\nAnnual plans are refunded in 30 days.\n")
    assert run_ingest(settings, embedder).generation == 1
    for i in range(3):
        write(settings.corpus_dir, f"new{i}.md", f"# New {i}\n\nHerons nest {i} times a year.\n")
    return _committed(settings)


@pytest.mark.parametrize("mode, error", [
    ("http500", EmbedderUnavailableError), ("429long", EmbedderUnavailableError),
    ("hang", EmbedderUnavailableError), ("malformed", EmbedderUnavailableError),
    ("nodata", EmbedderUnavailableError), ("mixeddim", EmbedderUnavailableError),
    ("401", EmbedderUnavailableError), ("wrongdim", IndexMismatchError),
])
def test_an_ingest_that_meets_a_fault_leaves_the_last_commit(settings, fake_llm: FakeLLM,
                                                            mode, error):
    url = fake_llm.base_url("switch")
    before = _index_then_add(settings, remote(url, timeout_s=2.0))
    fake_llm.set_mode(url, mode)
    # a new embedder, as a new `python -m ingest` would have (no size learnt yet)
    with pytest.raises(error, match="--rebuild" if mode == "wrongdim" else url):
        run_ingest(settings, remote(url, timeout_s=2.0))
    assert _committed(settings) == before
    fake_llm.set_mode(url, "ok")  # the server is back: the next run takes the new files
    report = run_ingest(settings, remote(url))
    assert report.added == ["new0.md", "new1.md", "new2.md"] and report.generation == 2


def test_a_refused_connection_mid_ingest_leaves_the_last_commit(settings):
    own = start_fake_llm()  # a server of its own, stopped mid-test: then nothing listens
    try:
        url = own.base_url("ok")
        before = _index_then_add(settings, remote(url))
    finally:
        own.close()
    with pytest.raises(EmbedderUnavailableError, match="cannot connect"):
        run_ingest(settings, remote(url))
    assert _committed(settings) == before


def test_a_server_lost_mid_run_keeps_the_checkpointed_vectors(settings, fake_llm: FakeLLM):
    # Other paths on one server: the same model id ("openai:fake-model@127.0.0.1:PORT").
    before = _index_then_add(settings, remote(fake_llm.base_url("ok")))
    half = remote(fake_llm.base_url("half"), batch_size=1, retries=0)  # one answer, then 500s
    one_at_a_time = settings.model_copy(update={"embed_checkpoint": 1})
    with pytest.raises(EmbedderUnavailableError, match="HTTP 500"):
        run_ingest(one_at_a_time, half)
    assert _committed(settings) == before
    assert run_ingest(settings, remote(fake_llm.base_url("ok"))).embedded == 2  # 1 was kept


def test_a_rebuild_takes_the_new_size(settings, fake_llm: FakeLLM):
    url = fake_llm.base_url("switch")
    _index_then_add(settings, remote(url))
    fake_llm.set_mode(url, "wrongdim")
    report = run_ingest(settings, remote(url), rebuild=True)  # what the refusal says to do
    assert report.generation == 2 and report.embedded == 4
    with SqliteSnapshot.open(settings.index_dir) as snap:
        assert snap.dense.d == 2 * EMBED_DIM


# -- llama.cpp's real server against the local model --------------------------------------------

@pytest.mark.slow
def test_llama_cpp_vectors_match_the_local_model(remote_embedder, torch_embedder):
    """Measured (README, "A remote embedder"): 50 starter chunks and 4 short texts, min cosine
    0.999998, mean 0.999999 (f32 GGUF, mean pooling; the client normalizes). Against torch's
    vectors: the default onnx-int8's are close, not equal (0.985 min here)."""
    texts = sample_texts(torch_embedder.count_tokens)
    cosines = np.sum(remote_embedder.embed(texts) * torch_embedder.embed(texts), axis=1)
    assert cosines.min() >= 0.99, (cosines.min(), texts[int(cosines.argmin())][:80])
    assert remote_embedder.dim == torch_embedder.dim == 384
    assert remote_embedder.max_tokens == torch_embedder.max_tokens == 254
    assert remote_embedder.count_tokens(texts) == torch_embedder.count_tokens(texts)


@pytest.mark.slow
def test_a_text_over_the_window_is_embedded_as_the_local_model_does(remote_embedder,
                                                                   real_embedder):
    """The local model reads 254 tokens and the server 510: the client cuts to 254, so both
    embed the same text (the server, sent the whole, embeds another)."""
    long = " ".join(sorted(sample_texts(real_embedder.count_tokens), key=len)[-4:])
    assert real_embedder.count_tokens([long])[0] > 400
    local = real_embedder.embed([long])[0]
    assert float(remote_embedder.embed([long])[0] @ local) >= 0.99
    whole = httpx.post(remote_embedder.url, json={"input": [long]}, timeout=60).json()
    raw = np.asarray(whole["data"][0]["embedding"], dtype=np.float32)
    assert float(raw @ local / np.linalg.norm(raw)) < 0.99
