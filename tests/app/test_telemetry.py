"""The request middleware on its own: a crash is answered as JSON with the request id, and logged
once."""
from __future__ import annotations

import asyncio
import json

from app.metrics import Metrics
from app.telemetry import RequestTelemetry


def test_a_crash_is_a_json_500_with_the_request_id_and_one_log_line(caplog):
    """A bug in a handler (not an AppError): answered here, logged once with its error."""
    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    metrics = Metrics()
    app = RequestTelemetry(broken, metrics, routes=[])
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    for path in ("/ask", "/v1/chat/completions"):
        scope = {"type": "http", "method": "POST", "path": path, "root_path": "",
                 "headers": [(b"x-request-id", b"crash-1")]}
        with caplog.at_level("INFO", logger="ragfirst.request"):
            asyncio.run(app(scope, receive, send))
        start, body = sent[-2], json.loads(sent[-1]["body"])
        assert start["status"] == 500 and (b"x-request-id", b"crash-1") in start["headers"]
        message = body["error"]["message"] if path.startswith("/v1/") else body["detail"]
        assert "crash-1" in message
    lines = [r for r in caplog.records if r.getMessage() == "request"]
    assert len(lines) == 2 and lines[0].fields["error"] == "RuntimeError"
    assert lines[0].fields["status"] == 500 and "incomplete" not in lines[0].fields
    # The method label is bounded: a made-up method is "other".
    scope = {"type": "http", "method": "FOO1", "path": "/x", "root_path": "", "headers": []}
    asyncio.run(app(scope, receive, send))
    requests = "ragfirst_http_requests_total"
    assert metrics.sample(requests, route="unmatched", method="other", status="500") == 1
    assert metrics.sample(requests, route="unmatched", method="FOO1", status="500") is None


def test_a_crash_s_traceback_keeps_its_message_out_of_the_log_unless_asked(caplog):
    """An exception's message may quote the request (a question, a document): the traceback
    shows where, not what, unless RAG_LOG_CONTENT is on."""
    question = "where is the " + "zan" + "zibar vault"  # never in a source line either

    async def broken(scope, receive, send):
        raise ValueError(f"the question was: {question}")

    async def send(message):
        pass

    async def receive():
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "POST", "path": "/ask", "root_path": "", "headers": []}
    for log_content in (False, True):
        caplog.clear()
        app = RequestTelemetry(broken, Metrics(), routes=[], log_content=log_content)
        with caplog.at_level("INFO", logger="ragfirst.request"):
            asyncio.run(app(scope, receive, send))
        (crash,) = [r for r in caplog.records if r.getMessage() == "unhandled error"]
        assert "in broken" in crash.fields["exc"] and "ValueError" in crash.fields["exc"]
        assert ("zanzibar" in crash.fields["exc"]) is log_content
        assert crash.exc_info is None  # no second, unredacted copy
