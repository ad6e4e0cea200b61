"""One contract every generator backend passes: extractive (no model), openai (against a real
`python -m llama_cpp.server` with SmolLM2-135M) and llamacpp (the same GGUF in-process).

The LLM backends are marked slow. SmolLM2 at temperature 0 samples greedily and is
deterministic here: checked for both LLM backends, repeated calls return the same text, and
`generate` (openai: a non-streaming request) and the joined `stream` deltas of the same input
are equal. So the contract asserts exact equality for every backend.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import pytest

from app.citations import check_answer
from app.errors import GeneratorFailed
from app.generators import Generator, build_generator
from app.generators.extractive import ExtractiveGenerator
from app.settings import Settings
from app.sources import Source
from app.text import sentence_spans
from ingest.embedders import HashingEmbedder
from tests.fake_llm import FakeLLM

REFUNDS = ("Refunds are issued within 10 business days after the returned item is received. "
           "Items must be returned in their original packaging.")
SHIPPING = ("Standard shipping takes 3 to 5 days. Express shipping costs 12 euros and arrives "
            "the next business day.")
WARRANTY = ("The warranty covers manufacturing defects for 24 months from the date of purchase. "
            "Damage caused by accidents is not covered.")
SOURCES = [
    Source(1, "policies/refunds.md", None, 0, len(REFUNDS), REFUNDS, 0.9),
    Source(2, "faq/shipping.pdf", 3, 40, 40 + len(SHIPPING), SHIPPING, 0.7),
    Source(3, "policies/warranty.html", None, 7, 7 + len(WARRANTY), WARRANTY, 0.5),
]
QUESTION = "How long do refunds take?"
_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


@dataclass
class Backend:
    name: str
    settings: Settings  # of a working generator
    make: Callable[[], Generator]  # that generator, built from its class and options
    broken: Callable[[], Generator] | None  # one whose backend fails; None: cannot fail
    _gen: Generator | None = None
    _answers: dict[tuple, str] = field(default_factory=dict)

    @property
    def gen(self) -> Generator:
        if self._gen is None:
            self._gen = self.make()
            self._gen.warm_up()
        return self._gen

    def answer(self, question: str = QUESTION, sources: tuple[Source, ...] = tuple(SOURCES)) -> str:
        """generate(), once per input (LLM calls take seconds)."""
        key = (question, sources)
        if key not in self._answers:
            self._answers[key] = self.gen.generate(question, list(sources))
        return self._answers[key]


def _llm_settings(**values: object) -> Settings:
    return Settings(max_answer_tokens=48, embedder="hashing", **values)


@pytest.fixture(scope="module", params=[
    "extractive",
    pytest.param("openai", marks=pytest.mark.slow),
    pytest.param("llamacpp", marks=pytest.mark.slow),
])
def backend(request: pytest.FixtureRequest) -> Backend:
    name = request.param
    if name == "extractive":
        return Backend(name, _llm_settings(generator="extractive"), ExtractiveGenerator, None)
    if name == "openai":
        from app.generators.openai import OpenAIGenerator, OpenAIOptions

        server = request.getfixturevalue("llama_server")
        working = _llm_settings(generator="openai", openai_base_url=server.base_url,
                                openai_model=server.model, llm_timeout_s=60)
        failing = _llm_settings(generator="openai", openai_base_url=FakeLLM.closed_url(),
                                openai_model=server.model, llm_timeout_s=10, llm_retries=1)
        return Backend(name, working,
                       lambda: OpenAIGenerator(OpenAIOptions.from_settings(working)),
                       lambda: OpenAIGenerator(OpenAIOptions.from_settings(failing)))
    from app.generators.llamacpp import LlamaCppGenerator, LlamaCppOptions

    missing = request.getfixturevalue("tmp_path_factory").mktemp("nomodel") / "missing.gguf"
    working = _llm_settings(generator="llamacpp")
    failing = _llm_settings(generator="llamacpp", llamacpp_model_path=missing)
    return Backend(name, working, lambda: LlamaCppGenerator(LlamaCppOptions.from_settings(working)),
                   lambda: LlamaCppGenerator(LlamaCppOptions.from_settings(failing)))


def test_name_and_model_are_set(backend: Backend) -> None:
    gen = backend.make()
    assert gen.name == backend.name
    if backend.name == "extractive":
        assert gen.model is None
    else:
        assert isinstance(gen.model, str) and gen.model
    # The factory the service uses builds the same backend from the same settings.
    built = build_generator(backend.settings)
    assert type(built) is type(gen) and (built.name, built.model) == (gen.name, gen.model)


def test_warm_up_can_be_called_twice(backend: Backend) -> None:
    gen = backend.gen  # warmed up once already
    model = gen.model
    assert gen.warm_up() is None
    assert gen.warm_up() is None
    assert gen.model == model
    assert gen.generate(QUESTION, SOURCES[:2]).strip()


def test_generate_returns_text(backend: Backend) -> None:
    answer = backend.answer()
    assert isinstance(answer, str) and answer.strip()


def test_generate_with_two_sources(backend: Backend) -> None:
    answer = backend.answer("How much does express shipping cost?", tuple(SOURCES[:2]))
    assert isinstance(answer, str) and answer.strip()


def test_stream_deltas_join_to_what_generate_returns(backend: Backend) -> None:
    deltas = list(backend.gen.stream(QUESTION, SOURCES))
    assert deltas and all(isinstance(d, str) for d in deltas)
    assert any(d for d in deltas)
    # Temperature 0: the same input gives the same text, streamed or not (see module docstring).
    assert "".join(deltas) == backend.answer()


def test_answer_passes_the_citation_check(backend: Backend) -> None:
    answer = backend.answer()
    checked = check_answer(answer, SOURCES, embed=HashingEmbedder().embed)
    given = {s.n for s in SOURCES}
    assert all(s in SOURCES for s in checked.cited)
    kept_markers = {int(x) for m in _MARKER.finditer(checked.answer) for x in m.group(1).split(",")}
    assert kept_markers <= given
    assert {s.n for s in checked.cited} == kept_markers
    assert not set(checked.invalid_markers) & given
    for s in checked.unsupported:
        assert isinstance(s, str) and s


def test_only_generator_failed_escapes(backend: Backend) -> None:
    if backend.broken is None:  # extractive cannot fail: no sources, no answer
        gen = backend.gen
        assert gen.generate(QUESTION, []) == ""
        assert list(gen.stream(QUESTION, [])) == []
        return
    if backend.name == "llamacpp":  # it loads the model in warm_up (openai only makes a client)
        with pytest.raises(GeneratorFailed, match="not found"):
            backend.broken().warm_up()
    with pytest.raises(GeneratorFailed):
        backend.broken().generate(QUESTION, SOURCES)
    with pytest.raises(GeneratorFailed):
        list(backend.broken().stream(QUESTION, SOURCES))


# --- extractive only -------------------------------------------------------------------------


def test_extractive_is_deterministic() -> None:
    first = ExtractiveGenerator().generate(QUESTION, SOURCES)
    gen = ExtractiveGenerator()
    assert [gen.generate(QUESTION, SOURCES) for _ in range(3)] == [first] * 3
    assert "".join(gen.stream(QUESTION, SOURCES)) == first
    assert first.startswith("Refunds are issued within 10 business days")


@pytest.mark.parametrize("question, sources", [
    (QUESTION, SOURCES),
    ("How much does express shipping cost?", SOURCES[:2]),
    ("What does the warranty cover?", [SOURCES[2], SOURCES[0]]),
    ("Tell me about shipping and refunds and warranty", SOURCES),
])
def test_extractive_sentences_carry_valid_markers_and_are_supported(question, sources) -> None:
    answer = ExtractiveGenerator().generate(question, sources)
    spans = sentence_spans(answer)
    assert 1 <= len(spans) <= 3
    given = {s.n for s in sources}
    for start, end in spans:
        markers = _MARKER.findall(answer[start:end])
        assert markers, answer[start:end]
        assert {int(x) for m in markers for x in m.split(",")} <= given
    checked = check_answer(answer, sources)  # lexical check alone: verbatim sentences pass
    assert (checked.answer, checked.unsupported, checked.invalid_markers) == (answer, [], [])
    assert checked.cited and all(s in sources for s in checked.cited)
