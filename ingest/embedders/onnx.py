"""The local model on ONNX Runtime (RAG_EMBED_BACKEND=onnx or onnx-int8): the same
sentence-transformers model, exported from its own weights on first use (onnx_export.py) and
cached, run without torch. "onnx" gives torch's vectors (cosine 1.000); "onnx-int8"
quantizes the weights to int8: a whole `python -m ingest` 2.85x faster than torch here, at
cosine 0.995 mean from torch's vectors (README, "The embedding backend").

The int8 variant follows the CPU (onnx_export.cpu_quantization) but is not part of `model_id`:
an index built on a VNNI machine opens on an AVX2 one, whose 7-bit weights give vectors as
close to the first machine's as both are to torch's. Replicas on mixed CPUs stay one index.

The same tokenizer (saved with the export), the same window (the model's max_seq_length) and the
same pooling and normalisation (they are in the exported graph). Every encode runs on one
thread (EncodeQueue), as torch's do. The backend is part of `model_id`: an index embedded by
another backend is refused with the rebuild message, because the vectors are close, not equal.

Texts run one at a time, unpadded (see `_encode`): a text's vector is the same alone or among
others, deterministic, as the embedder contract asks.
"""
from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from ingest.embedders.local import (EncodeQueue, load_sentence_transformer, model_identity,
                                    resolve_model_path)
from ingest.embedders.onnx_export import (INPUTS, MODEL_FILE, cache_folder, cached_model,
                                          cpu_quantization, export)
from ingest.errors import ModelUnavailableError
from ingest.settings import DEFAULT_MODEL

log = logging.getLogger(__name__)


class OnnxEmbedder:
    def __init__(self, name: str = DEFAULT_MODEL, *, quantized: bool = True,
                 cache_dir: Path, batch_size: int = 32, allow_download: bool = False,
                 bulk: bool = False) -> None:
        self.backend = "onnx-int8" if quantized else "onnx"
        self._base_id = model_identity(name)
        self.model_id = f"{self.backend}:{self._base_id}"
        self._name = name
        self._variant = cpu_quantization() if quantized else "fp32"
        self._cache_dir = Path(cache_dir)
        self._batch_size = batch_size
        self._allow_download = allow_download
        self._bulk = bulk
        self._queue = EncodeQueue()
        self._load_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._session = None
        self.folder: Path | None = None  # where the model was loaded from, once loaded

    def warm_up(self) -> None:
        with self._load_lock:
            if self._session is None:
                self._load()

    def _load(self) -> None:
        folder = cache_folder(self._cache_dir, self._base_id, resolve_model_path(self._name),
                              self._variant)
        manifest = cached_model(folder)
        if manifest is None:
            folder, manifest = self._export(folder)
        max_len = int(manifest["max_seq_length"])
        try:
            counter, tokenizer = _tokenizer(folder, None), _tokenizer(folder, max_len)
            session = _session(folder / MODEL_FILE, spin=self._bulk)
            # A service's urgent work (a question, an answer's check: a few short texts) runs
            # on a session of one thread: 2.9 ms a query, 3.1 ms of CPU, against 3.6 ms and
            # 4.8 ms on both cores, where the second thread costs more waking than it saves
            # (int8, 2 cores, `make bench-ask`). Same graph, same kernels: the same vectors,
            # bit for bit, as the test checks.
            quick = session if self._bulk else _session(folder / MODEL_FILE, spin=False,
                                                        threads=1)
        except Exception as exc:  # onnxruntime's and tokenizers' own error types
            raise ModelUnavailableError(f"cannot load the ONNX model in {folder} "
                                        f"({type(exc).__name__}: {exc})") from exc
        self._tokenizer, self._counter = tokenizer, counter
        self._max_len, self._dim = max_len, int(manifest["dim"])
        self.folder = folder
        self._quick = quick
        self._session = session  # last: a caller that sees the session sees the rest

    def _export(self, folder: Path) -> tuple[Path, dict]:
        """Export the model into the cache (or, if the cache cannot be written, into a
        temporary folder for this process, with a warning)."""
        log.info("exporting %s to ONNX (%s), once: %s", self._base_id, self._variant, folder)
        model = load_sentence_transformer(self._name, self._allow_download)
        try:
            return folder, export(model, folder, self._variant)
        except OSError as exc:  # read-only, not a folder, full: this run still gets a model
            scratch = tempfile.mkdtemp(prefix="ragfirst-onnx-")
            atexit.register(shutil.rmtree, scratch, ignore_errors=True)
            fallback = Path(scratch) / folder.name
            log.warning("cannot write RAG_EMBED_CACHE_DIR (%s): the ONNX model goes to %s "
                        "for this process only; set RAG_EMBED_CACHE_DIR to a writable folder "
                        "to export once", exc, fallback)
            return fallback, export(model, fallback, self._variant)

    @property
    def dim(self) -> int:
        self.warm_up()
        return self._dim

    @property
    def max_tokens(self) -> int:
        self.warm_up()
        return self._max_len - self._tokenizer.post_processor.num_special_tokens_to_add(False)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        self.warm_up()
        with self._count_lock:  # its own tokenizer: a Rust tokenizer is not for two threads
            encodings = self._counter.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def embed(self, texts: Sequence[str], *, urgent: bool = False) -> np.ndarray:
        self.warm_up()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        # RAG_EMBED_BATCH_SIZE texts per turn on the encode thread: a question waits for one
        # such turn, not for a whole checkpoint of an ingest.
        session = self._quick if urgent else self._session
        parts = [self._queue.submit(self._encode, texts[i:i + self._batch_size], session,
                                    urgent=urgent)
                 for i in range(0, len(texts), self._batch_size)]
        return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)

    def _encode(self, texts: list[str], session) -> np.ndarray:
        """One text per run, unpadded. Faster here than padded batches of 32 (SciFact
        abstracts 26.7 against 13.8 per second, sentences 118 against 84, int8, 2 cores), and a
        text's vector never depends on its neighbours: int8 quantizes activations per run."""
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for row, enc in enumerate(self._tokenizer.encode_batch(texts)):
            feeds = dict(zip(INPUTS, (np.asarray([ids], dtype=np.int64) for ids in
                                      (enc.ids, enc.attention_mask, enc.type_ids))))
            out[row] = session.run(None, feeds)[0][0]
        # the graph normalises; again here so float rounding never leaves a row off unit length
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _tokenizer(folder: Path, max_len: int | None):
    """The model's own tokenizer, saved with the export (its tokenizer.json: the same
    normalizer, vocabulary and special tokens as sentence-transformers'), through the
    `tokenizers` library alone: loading transformers would import torch (~6 s)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    if max_len is None:
        tokenizer.no_truncation()
    else:  # the window, special tokens included, as sentence-transformers cuts
        tokenizer.enable_truncation(max_len)
    return tokenizer


def _session(path: Path, spin: bool, threads: int = 0):
    """Intra-op threads on every core (`threads` 0), or that many. Between operators they
    spin only for a bulk embedder (`python -m ingest`, where nothing else wants the cores):
    int8, 2 cores, quiet machine, 60 SciFact abstracts/s spinning against 48 sleeping. In the
    service they sleep, because HTTP, BM25 and the other clients' requests run on the same
    two cores."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
