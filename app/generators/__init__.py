"""The Generator seam: (question, numbered sources) -> answer text with [n] citation markers.

Backends, chosen by `Settings.generator`:
- "extractive": model-free, deterministic; picks the sources' sentences that best match the
  question, each with its marker (the default: works everywhere).
- "openai": any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM, llama.cpp's
  server, LM Studio) over httpx.
- "llamacpp": a GGUF model in-process through llama-cpp-python (extra `llamacpp`).

An LLM generator may also `condense(question, history, deadline)`: rewrite a follow-up into a
standalone question (app.conversation.Condenser); the service uses it when it is there.

Generators raise `GeneratorFailed` (502) or `GeneratorTimeout` (504) from app.errors; nothing
else escapes them. Heavy models load in `warm_up()`, called from the service's lifespan.
"""
from __future__ import annotations

from collections.abc import Generator as _PyGenerator
from typing import TYPE_CHECKING, Protocol, Sequence

from app.sources import Source

if TYPE_CHECKING:
    from app.conversation import Turn
    from app.settings import Settings
    from ingest.embedders import Embedder


# What `stream` returns: the answer's text in pieces; `close()` on it frees what it holds.
TextStream = _PyGenerator[str, None, None]


class Generator(Protocol):
    name: str  # "extractive" | "openai" | "llamacpp"
    model: str | None  # the model it answers with, if any

    def warm_up(self) -> None:
        """Load the model or open the connection pool (called once, at start)."""
        ...

    def generate(self, question: str, sources: Sequence[Source],
                 deadline: float | None = None, history: Sequence["Turn"] = ()) -> str:
        """The answer, before the monotonic `deadline` (default: now + the LLM timeout);
        `history` is the conversation before the question (an LLM reads its latest turns)."""
        ...

    def stream(self, question: str, sources: Sequence[Source],
               deadline: float | None = None, history: Sequence["Turn"] = ()) -> TextStream:
        """Text deltas; joined, they are what `generate` would return. Closing the stream
        early frees what it holds (the model's lock, the HTTP connection)."""
        ...

    def close(self) -> None:
        """Release the model or the connections (at shutdown)."""
        ...


def build_generator(settings: "Settings", embedder: "Embedder | None" = None) -> Generator:
    """The backend named by `settings.generator` (imported only when chosen), given the
    settings it uses. The extractive one also scores sentences with `embedder` (the
    service's, already loaded; without it, by their words alone)."""
    if settings.generator == "extractive":
        from app.generators.extractive import ExtractiveGenerator

        if embedder is None or not settings.extractive_embed:
            return ExtractiveGenerator()
        return ExtractiveGenerator(embed=lambda texts: embedder.embed(texts, urgent=True))
    if settings.generator == "openai":
        from app.generators.openai import OpenAIGenerator, OpenAIOptions

        return OpenAIGenerator(OpenAIOptions.from_settings(settings))
    if settings.generator == "llamacpp":
        from app.generators.llamacpp import LlamaCppGenerator, LlamaCppOptions

        return LlamaCppGenerator(LlamaCppOptions.from_settings(settings))
    raise ValueError(f"unknown generator {settings.generator!r}: "
                     "use extractive, openai or llamacpp")
