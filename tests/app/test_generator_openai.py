"""The OpenAI-compatible generator against a real HTTP server that injects faults (tests/fake_llm.py).

Every call must end in an answer, GeneratorFailed (502) or GeneratorTimeout (504), within
llm_timeout_s (2 s here) plus a small margin.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import httpx
import pytest

from app.errors import GeneratorFailed, GeneratorTimeout
from app.generators.openai import OpenAIGenerator, OpenAIOptions
from app.settings import Settings
from app.sources import Source
from tests.fake_llm import ANSWER, PIECES, FakeLLM

TIMEOUT = 2.0
KEY = "sk-test-secret-123"
SOURCES = [
    Source(n=1, path="policies/refunds.md", page=None, start=0, end=38,
           text="Refunds are processed within 30 days.", score=0.9),
    Source(n=2, path="manual.pdf", page=3, start=100, end=140,
           text="Shipping is free above 50 euros.", score=0.5),
]
QUESTION = "How long do refunds take?"


_made: list[OpenAIGenerator] = []


def make(base_url: str, **overrides: Any) -> OpenAIGenerator:
    values: dict[str, Any] = dict(openai_base_url=base_url, openai_model="fake-model",
                                  openai_api_key=KEY, llm_timeout_s=TIMEOUT, llm_retries=2,
                                  embedder="hashing")
    values.update(overrides)
    generator = OpenAIGenerator(OpenAIOptions.from_settings(Settings(**values)))
    generator.warm_up()
    _made.append(generator)
    return generator


@pytest.fixture(autouse=True)
def _close_generators():
    yield
    while _made:
        _made.pop().close()


def call(generator: OpenAIGenerator, streaming: bool) -> str:
    if streaming:
        return "".join(generator.stream(QUESTION, SOURCES))
    return generator.generate(QUESTION, SOURCES)


def timed_failure(fn: Callable[[], Any], kind: type[Exception]) -> tuple[Exception, float]:
    start = time.monotonic()
    with pytest.raises(kind) as info:
        fn()
    return info.value, time.monotonic() - start


both = pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])


# -- answers -------------------------------------------------------------------------------

def test_generate_returns_the_content_and_sends_key_model_and_numbered_sources(fake_llm: FakeLLM):
    url = fake_llm.base_url("ok")
    generator = make(url, max_answer_tokens=300, temperature=0.2)
    assert (generator.name, generator.model) == ("openai", "fake-model")
    assert generator.generate(QUESTION, SOURCES) == ANSWER
    [request] = fake_llm.requests(url)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = request.body
    assert (body["model"], body["stream"], body["max_tokens"], body["temperature"]) == \
        ("fake-model", False, 300, 0.2)
    system, user = body["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    assert '<source n="1" from="policies/refunds.md">' in user["content"]
    assert '<source n="2" from="manual.pdf, page 3">' in user["content"]
    assert "Refunds are processed within 30 days." in user["content"]
    assert QUESTION in user["content"]


def test_stream_yields_the_deltas_skipping_comments_and_role_chunks(fake_llm: FakeLLM):
    url = fake_llm.base_url("ok")
    pieces = list(make(url).stream(QUESTION, SOURCES))
    assert pieces == PIECES and "".join(pieces) == ANSWER
    [request] = fake_llm.requests(url)
    assert request.body["stream"] is True
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_no_key_means_no_authorization_header(fake_llm: FakeLLM):
    url = fake_llm.base_url("ok")
    assert make(url, openai_api_key=None).generate(QUESTION, SOURCES) == ANSWER
    assert "authorization" not in fake_llm.requests(url)[0].headers


def test_joined_stream_equals_generate_on_an_echoed_prompt(fake_llm: FakeLLM):
    generator = make(fake_llm.base_url("echo"))
    answer = generator.generate(QUESTION, SOURCES)
    assert "Shipping is free above 50 euros." in answer and QUESTION in answer
    assert "".join(generator.stream(QUESTION, SOURCES)) == answer


def test_generate_without_warm_up_creates_the_client(fake_llm: FakeLLM):
    settings = Settings(openai_base_url=fake_llm.base_url("ok"), llm_timeout_s=TIMEOUT,
                        embedder="hashing", openai_api_key=None)
    generator = OpenAIGenerator(OpenAIOptions.from_settings(settings))
    _made.append(generator)
    assert generator.generate(QUESTION, SOURCES) == ANSWER


def test_stream_stops_at_finish_reason_without_waiting_for_done(fake_llm: FakeLLM):
    start = time.monotonic()
    # The server never sends [DONE] and keeps the connection open: waiting for it would end
    # in a GeneratorTimeout at the deadline, not in the answer.
    assert call(make(fake_llm.base_url("nodone")), streaming=True) == ANSWER
    assert time.monotonic() - start < TIMEOUT


def test_a_stream_abandoned_by_the_caller_closes_quietly(fake_llm: FakeLLM):
    stream = make(fake_llm.base_url("ok")).stream(QUESTION, SOURCES)
    assert next(stream) == PIECES[0]
    stream.close()


# -- retries -------------------------------------------------------------------------------

@both
def test_flaky_backend_succeeds_on_the_third_attempt(fake_llm: FakeLLM, streaming: bool, caplog):
    url = fake_llm.base_url("flaky")
    with caplog.at_level(logging.DEBUG):
        assert call(make(url), streaming) == ANSWER
    assert fake_llm.attempts(url) == 3
    assert "retrying" in caplog.text and KEY not in caplog.text


@both
def test_http_500_fails_after_one_plus_retries_attempts(fake_llm: FakeLLM, streaming: bool):
    url = fake_llm.base_url("http500")
    error, _ = timed_failure(lambda: call(make(url), streaming), GeneratorFailed)
    assert type(error) is GeneratorFailed and error.status == 502
    assert "HTTP 500" in str(error) and "internal boom" in str(error)
    assert "3 attempts" in str(error)
    assert fake_llm.attempts(url) == 3


def test_no_retries_when_llm_retries_is_zero(fake_llm: FakeLLM):
    url = fake_llm.base_url("http500")
    timed_failure(lambda: make(url, llm_retries=0).generate(QUESTION, SOURCES), GeneratorFailed)
    assert fake_llm.attempts(url) == 1


def test_retries_never_run_past_the_deadline(fake_llm: FakeLLM):
    url = fake_llm.base_url("http500")
    generator = make(url, llm_retries=10, llm_timeout_s=1.0)
    start = time.monotonic()
    error, _ = timed_failure(lambda: generator.generate(QUESTION, SOURCES), GeneratorFailed)
    # No attempt starts after the deadline (10 retries with their backoff would take ~30 s),
    # and the error is the real one, not a timeout.
    attempts = fake_llm.requests(url)
    assert 1 < len(attempts) < 11 and all(a.at < start + 1.0 for a in attempts)
    assert "HTTP 500" in str(error) and type(error) is GeneratorFailed


def test_429_is_retried(fake_llm: FakeLLM):
    url = fake_llm.base_url("429")
    error, _ = timed_failure(lambda: make(url).generate(QUESTION, SOURCES), GeneratorFailed)
    assert "HTTP 429" in str(error) and "rate limited" in str(error)
    assert fake_llm.attempts(url) == 3


def test_429_with_a_retry_after_beyond_the_deadline_fails_at_once(fake_llm: FakeLLM):
    url = fake_llm.base_url("429long")
    error, elapsed = timed_failure(lambda: make(url).generate(QUESTION, SOURCES), GeneratorFailed)
    assert elapsed < TIMEOUT and fake_llm.attempts(url) == 1  # not after an hour, not at the
    assert "no time left to retry" in str(error)                # deadline: at once


@both
def test_400_is_not_retried(fake_llm: FakeLLM, streaming: bool):
    url = fake_llm.base_url("400")
    error, _ = timed_failure(lambda: call(make(url), streaming), GeneratorFailed)
    assert type(error) is GeneratorFailed
    assert "HTTP 400" in str(error) and "context length exceeded" in str(error)
    assert KEY not in str(error)
    assert fake_llm.attempts(url) == 1


# -- timeouts ------------------------------------------------------------------------------

@both
@pytest.mark.parametrize("mode", ["hang", "drip"])
def test_a_silent_or_dripping_backend_times_out_at_the_deadline(fake_llm: FakeLLM, mode: str,
                                                                 streaming: bool):
    url = fake_llm.base_url(mode)
    error, elapsed = timed_failure(lambda: call(make(url), streaming), GeneratorTimeout)
    assert error.status == 504 and "within 2 s" in str(error)
    assert TIMEOUT - 0.1 < elapsed < TIMEOUT + 1.5
    assert fake_llm.attempts(url) == 1  # a timeout is the deadline: no retry


@both
def test_a_stall_mid_body_is_cut_at_the_deadline(fake_llm: FakeLLM, streaming: bool):
    # Bytes for 1.8 s, then silence: a per-read timeout alone would end at about 3.8 s.
    url = fake_llm.base_url("trickle")
    _, elapsed = timed_failure(lambda: call(make(url), streaming), GeneratorTimeout)
    assert TIMEOUT - 0.1 < elapsed < TIMEOUT + 1.2


# -- malformed answers and cut streams -------------------------------------------------------

@both
@pytest.mark.parametrize("mode", ["malformed", "nochoices", "nocontent"])
def test_malformed_answers_fail_without_retry(fake_llm: FakeLLM, mode: str, streaming: bool):
    url = fake_llm.base_url(mode)
    error, _ = timed_failure(lambda: call(make(url), streaming), GeneratorFailed)
    assert type(error) is GeneratorFailed and "malformed" in str(error)
    assert fake_llm.attempts(url) == 1


@pytest.mark.parametrize("mode", ["cut", "cutchunked"])
def test_a_stream_cut_off_midway_fails_after_its_first_deltas(fake_llm: FakeLLM, mode: str):
    url = fake_llm.base_url(mode)
    received: list[str] = []
    with pytest.raises(GeneratorFailed, match="LLM stream was cut off") as info:
        for piece in make(url).stream(QUESTION, SOURCES):
            received.append(piece)
    assert type(info.value) is GeneratorFailed
    assert received == PIECES[:2]
    assert fake_llm.attempts(url) == 1  # text was already yielded: no retry


def test_a_body_cut_off_before_its_end_is_retried_then_fails(fake_llm: FakeLLM):
    url = fake_llm.base_url("cut")
    timed_failure(lambda: make(url).generate(QUESTION, SOURCES), GeneratorFailed)
    assert fake_llm.attempts(url) == 3


def test_a_stream_that_is_not_an_event_stream_fails_at_once(fake_llm: FakeLLM):
    url = fake_llm.base_url("plainstream")
    with pytest.raises(GeneratorFailed, match="did not answer with an event stream"):
        call(make(url), streaming=True)
    assert fake_llm.attempts(url) == 1  # the server's answer, not a network fault: no retry


def test_an_error_event_mid_stream_fails(fake_llm: FakeLLM):
    with pytest.raises(GeneratorFailed, match="model overloaded"):
        call(make(fake_llm.base_url("streamerror")), streaming=True)


# -- connection errors and everything else ---------------------------------------------------

@both
def test_connection_refused_fails_after_retries_and_only_the_log_names_the_url(
        fake_llm: FakeLLM, streaming: bool, caplog):
    url = fake_llm.closed_url()
    with caplog.at_level("WARNING", logger="app.generators.openai"):
        error, elapsed = timed_failure(lambda: call(make(url), streaming), GeneratorFailed)
    assert type(error) is GeneratorFailed and error.status == 502
    assert "cannot connect to the LLM backend" in str(error) and "3 attempts" in str(error)
    address = url.split("//", 1)[1].split("/", 1)[0]
    assert address not in str(error)  # a client is told "the LLM backend", never where it is
    assert address in caplog.text  # the operator is
    assert elapsed < TIMEOUT


def test_an_unexpected_error_becomes_generator_failed():
    def explode(request: httpx.Request) -> httpx.Response:
        raise ValueError("something odd")

    settings = Settings(openai_base_url="http://llm.invalid/v1", llm_timeout_s=TIMEOUT,
                        embedder="hashing", openai_api_key=None)
    generator = OpenAIGenerator(OpenAIOptions.from_settings(settings), transport=httpx.MockTransport(explode))
    _made.append(generator)
    with pytest.raises(GeneratorFailed, match="something odd"):
        generator.generate(QUESTION, SOURCES)
