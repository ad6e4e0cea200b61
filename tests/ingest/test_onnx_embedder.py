"""The local model on ONNX Runtime (RAG_EMBED_BACKEND=onnx, onnx-int8) against the same model on
torch: the same tokens, window and vectors (fp32) or close ones (int8); the export's cache
(reused, rebuilt when damaged, never half-written); the backend in the index's identity."""
from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np
import pytest

from ingest.embedders import OnnxEmbedder
from ingest.embedders.onnx_export import MANIFEST, MODEL_FILE, cached_model
from ingest.errors import IndexMismatchError
from ingest.settings import IngestSettings
from ingest.sync import run_ingest
from tests.helpers import STARTER_CORPUS, write

TEXTS = ["The refund window is thirty days.", "What is the refund window?",
         "Glaciers carve valleys over millennia.", "é ü 漢字 🙂",
         "Mitochondria are the powerhouse of the cell. " * 40]  # past the 254-token window


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def test_fp32_gives_torchs_vectors_and_int8_close_ones(torch_embedder, onnx_embedder,
                                                       real_embedder):
    reference = torch_embedder.embed(TEXTS)
    assert _cosines(onnx_embedder.embed(TEXTS), reference).min() > 0.9999
    int8 = _cosines(real_embedder.embed(TEXTS), reference)
    assert int8.min() > 0.97 and int8.mean() > 0.985  # SciFact abstracts: 0.995 mean


def test_a_question_gets_the_vector_an_ingest_gives_the_same_text(monkeypatch, onnx_embedder):
    """A question runs alone on the encode thread, an ingest's texts side by side on helper
    threads (three lanes here, whatever the cores): the same text gets the same vector, bit
    for bit, either way and in any order."""
    from ingest.embedders import onnx

    monkeypatch.setattr(onnx, "LANES", 3)
    paragraphs = [p for f in sorted(STARTER_CORPUS.rglob("*.md"))[:4]
                  for p in f.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    texts = TEXTS + paragraphs
    assert len(texts) % 3
    int8 = OnnxEmbedder(quantized=True, cache_dir=IngestSettings().embed_cache_dir)
    fp32 = OnnxEmbedder(quantized=False, cache_dir=onnx_embedder._cache_dir)
    for embedder in (fp32, int8):
        urgent = np.vstack([embedder.embed([t], urgent=True) for t in texts])
        np.testing.assert_array_equal(urgent, embedder.embed(texts))
        np.testing.assert_array_equal(urgent[::-1], embedder.embed(texts[::-1]))
        assert embedder._helpers is not None  # the lanes ran


def test_a_lane_that_fails_fails_the_piece_and_leaves_none_running(monkeypatch, onnx_embedder):
    from ingest.embedders import onnx

    monkeypatch.setattr(onnx, "LANES", 3)
    embedder = OnnxEmbedder(quantized=False, cache_dir=onnx_embedder._cache_dir)
    embedder.warm_up()
    real, finished = embedder._run, []

    def first_lane_fails(feeds):  # lane 0 runs on the encode thread, the others on helpers
        if not threading.current_thread().name.startswith("embed-lane"):
            raise RuntimeError("lane failed")
        time.sleep(0.2)
        finished.append(len(feeds))
        return real(feeds)

    monkeypatch.setattr(embedder, "_run", first_lane_fails)
    with pytest.raises(RuntimeError, match="lane failed"):
        embedder.embed(TEXTS)
    assert sorted(finished) == [1, 2]  # the helpers' lanes had ended when the error came
    monkeypatch.setattr(embedder, "_run", real)
    np.testing.assert_array_equal(embedder.embed(TEXTS), onnx_embedder.embed(TEXTS))


def test_same_tokens_and_window_as_torch(torch_embedder, onnx_embedder, real_embedder):
    """The tokenizers library reads the tokenizer.json the export saved: token for token what
    sentence-transformers' tokenizer gives, over every paragraph of the starter corpus."""
    paragraphs = [p for f in sorted(STARTER_CORPUS.rglob("*.md"))
                  for p in f.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    texts = TEXTS + paragraphs
    assert len(paragraphs) > 100
    ours = onnx_embedder._counter.encode_batch(texts, add_special_tokens=False)
    theirs = torch_embedder.model.tokenizer(texts, add_special_tokens=False)["input_ids"]
    assert [e.ids for e in ours] == theirs
    for embedder in (onnx_embedder, real_embedder):
        assert embedder.count_tokens(texts) == torch_embedder.count_tokens(texts)
        assert (embedder.max_tokens, embedder.dim) == (torch_embedder.max_tokens,
                                                       torch_embedder.dim)


def test_a_text_past_the_window_is_cut_as_torch_cuts_it(torch_embedder, onnx_embedder):
    long_text = TEXTS[-1]
    assert torch_embedder.count_tokens([long_text])[0] > torch_embedder.max_tokens
    longer = long_text + " Completely different words about volcanoes at the end." * 20
    # both cut at the window: what comes after it changes nothing
    np.testing.assert_allclose(onnx_embedder.embed([longer]), onnx_embedder.embed([long_text]),
                               atol=1e-6)
    assert _cosines(onnx_embedder.embed([longer]), torch_embedder.embed([longer]))[0] > 0.9999


def test_the_backend_is_part_of_the_model_identity(settings, torch_embedder, onnx_embedder,
                                                   real_embedder):
    assert len({e.model_id for e in (torch_embedder, onnx_embedder, real_embedder)}) == 3
    write(settings.corpus_dir, "a.md", "# A\n\nAardvarks dig burrows.\n")
    torch_settings = settings.model_copy(update={"embedder": "sentence-transformers"})
    run_ingest(torch_settings, torch_embedder)
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        run_ingest(torch_settings, real_embedder)
    assert run_ingest(torch_settings, real_embedder, rebuild=True).changed == ["a.md"]
    assert run_ingest(torch_settings, real_embedder).unchanged == ["a.md"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An fp32 export into a cache of its own (fp32: no quantization, the quicker export)."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    embedder = OnnxEmbedder(quantized=False, cache_dir=cache)
    embedder.warm_up()
    return cache, embedder


@pytest.mark.slow
def test_the_export_is_cached_whole_and_reused(exported, onnx_embedder, monkeypatch):
    cache, embedder = exported
    assert [p.name for p in cache.iterdir()] == [embedder.folder.name]  # no temporaries left
    assert {MODEL_FILE, MANIFEST, "tokenizer.json"} <= {p.name for p in embedder.folder.iterdir()}
    np.testing.assert_allclose(embedder.embed(TEXTS), onnx_embedder.embed(TEXTS), atol=1e-5)

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr("ingest.embedders.onnx.export", no_export)
    again = OnnxEmbedder(quantized=False, cache_dir=cache)
    again.warm_up()
    assert again.folder == embedder.folder


@pytest.mark.slow
def test_a_damaged_cached_model_is_removed_not_loaded(exported, tmp_path, caplog):
    import shutil

    _, embedder = exported
    good = json.loads((embedder.folder / MANIFEST).read_text())
    for damage in ("flip a byte", "no manifest", "manifest garbage", "no model",
                   "tokenizer changed", "manifest without the window"):
        copy = tmp_path / damage.replace(" ", "-")
        shutil.copytree(embedder.folder, copy)
        model = copy / MODEL_FILE
        if damage == "flip a byte":
            data = bytearray(model.read_bytes())
            data[len(data) // 2] ^= 0xFF
            model.write_bytes(bytes(data))
        elif damage == "no manifest":
            (copy / MANIFEST).unlink()
        elif damage == "manifest garbage":
            (copy / MANIFEST).write_text("{not json")
        elif damage == "tokenizer changed":
            (copy / "tokenizer.json").write_text("{}")
        elif damage == "manifest without the window":
            (copy / MANIFEST).write_text(json.dumps({k: v for k, v in good.items()
                                                     if k != "max_seq_length"}))
        else:
            model.unlink()
        with caplog.at_level(logging.WARNING):
            assert cached_model(copy) is None, damage
        assert not copy.exists() and "damaged" in caplog.text
    assert cached_model(embedder.folder) == good  # the whole one is kept


@pytest.mark.slow
def test_an_unwritable_cache_still_gives_a_model(exported, tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    embedder = OnnxEmbedder(quantized=False, cache_dir=blocker / "onnx")
    with caplog.at_level(logging.WARNING):
        embedder.warm_up()
    assert "RAG_EMBED_CACHE_DIR" in caplog.text and blocker.is_file()
    np.testing.assert_allclose(embedder.embed(TEXTS[:2]), exported[1].embed(TEXTS[:2]),
                               atol=1e-5)
