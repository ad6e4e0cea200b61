"""The local model on ONNX Runtime (RAG_EMBED_BACKEND=onnx or onnx-int8): the same
sentence-transformers model, exported from its own weights on first use (onnx_export.py) and
cached, run without torch. "onnx" gives torch's vectors (cosine 1.000); "onnx-int8"
quantizes the weights to int8: a whole `python -m ingest` 3.2x faster than torch here, at
cosine 0.995 mean from torch's vectors (README, "The embedding backend").

The int8 variant follows the CPU (onnx_export.cpu_quantization) but is not part of `model_id`:
an index built on a VNNI machine opens on an AVX2 one, whose 7-bit weights give vectors as
close to the first machine's as both are to torch's. Replicas on mixed CPUs stay one index.

The same tokenizer (saved with the export), the same window (the model's max_seq_length) and the
same pooling and normalisation (they are in the exported graph). Every encode is scheduled on
the one encode thread (EncodeQueue), as torch's are, which deals its texts out to LANES - 1
helper threads beside it. The backend is part of `model_id`: an index embedded by
another backend is refused with the rebuild message, because the vectors are close, not equal.

Texts run one at a time, unpadded, each on one thread, several at once over the cores (see
`_encode`): a text's vector is the same alone or among others, deterministic, as the embedder
contract asks.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from concurrent.futures import wait
from pathlib import Path
from typing import Sequence

import numpy as np

from ingest.embedders.local import (EncodeQueue, load_sentence_transformer, model_identity,
                                    resolve_model_path)
from ingest.embedders.onnx_export import (INPUTS, MODEL_FILE, cache_folder, cached_model,
                                          cpu_quantization, export)
from ingest.errors import ModelUnavailableError
from ingest.side_pool import SidePool
from ingest.settings import DEFAULT_MODEL

log = logging.getLogger(__name__)
# Texts of one piece of work run on this many threads at once (the encode thread and helpers).
LANES = max(1, min(len(os.sched_getaffinity(0)), 8))


class OnnxEmbedder:
    uses_all_cores = False  # one thread per text (`_encode`)

    def __init__(self, name: str = DEFAULT_MODEL, *, quantized: bool = True,
                 cache_dir: Path, batch_size: int = 32,
                 allow_download: bool = False) -> None:
        self.backend = "onnx-int8" if quantized else "onnx"
        self._base_id = model_identity(name)
        self.model_id = f"{self.backend}:{self._base_id}"
        self._name = name
        self._variant = cpu_quantization() if quantized else "fp32"
        self._cache_dir = Path(cache_dir)
        self.batch_size = batch_size
        self._allow_download = allow_download
        self._queue = EncodeQueue()
        self._helpers = SidePool(LANES - 1, "embed-lane")
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
            session = _session(folder / MODEL_FILE)
        except Exception as exc:  # onnxruntime's and tokenizers' own error types
            raise ModelUnavailableError(f"cannot load the ONNX model in {folder} "
                                        f"({type(exc).__name__}: {exc})") from exc
        self._tokenizer, self._counter = tokenizer, counter
        self._max_len, self._dim = max_len, int(manifest["dim"])
        self.folder = folder
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
        parts = [self._queue.submit(self._encode, texts[i:i + self.batch_size], urgent=urgent)
                 for i in range(0, len(texts), self.batch_size)]
        return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)

    def _encode(self, texts: list[str]) -> np.ndarray:
        """One text per run, unpadded, each run on one thread; the texts dealt out over LANES
        threads (this one and helpers), one session shared (ONNX Runtime runs it from several
        threads at once). Unpadded runs are faster here than padded batches of 32 (SciFact
        abstracts 26.7 against 13.8 per second, int8, 2 cores), and a text's vector never
        depends on its neighbours: int8 quantizes activations per run. Runs side by side beat
        one run on both cores: 40-56 abstracts/s against 25-48, and a query 2.9 ms (3.1 ms of
        CPU) against 3.6 (4.8), a second thread in one run costing more waking than it saves."""
        # tokenized here, on the encode thread: a Rust tokenizer is not for two threads
        feeds = [dict(zip(INPUTS, (np.asarray([ids], dtype=np.int64) for ids in
                                   (enc.ids, enc.attention_mask, enc.type_ids))))
                 for enc in self._tokenizer.encode_batch(texts)]
        lanes = min(LANES, len(feeds))
        helped = [self._helpers.submit(self._run, feeds[lane::lanes]) for lane in range(1, lanes)]
        try:
            first = self._run(feeds[0::lanes])
        finally:  # no lane still running once this piece ends, even when one failed
            wait(helped)
        out = np.empty((len(feeds), self._dim), dtype=np.float32)
        out[0::lanes] = first
        for lane, done in enumerate(helped, start=1):
            out[lane::lanes] = done.result()
        # the graph normalises; again here so float rounding never leaves a row off unit length
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def _run(self, feeds: list[dict]) -> np.ndarray:
        return np.vstack([self._session.run(None, f)[0] for f in feeds])

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


def _session(path: Path):
    """One thread per run (the texts run side by side instead: `_encode`), so no thread pool
    of ONNX Runtime's own spins beside HTTP, BM25 and the other requests."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
