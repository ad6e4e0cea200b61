"""Hostile requests (an attacker's, or a broken client's), shared by the in-process tests
(tests/app/api/test_hostile_requests.py) and the same requests sent to the real server
(tests/e2e/test_hostile_server.py): each is (path, raw body, status it must get, a phrase
the error must hold). Every question holds SECRET_WORD, which must never reach the log."""
from __future__ import annotations

import json

from tests.helpers import REFUND_QUESTION

SECRET_WORD = "zanzibarquestion"


def chat(content, **extra) -> dict:
    return {"model": "ragfirst", "messages": [{"role": "user", "content": content}], **extra}


def nested(depth: int) -> bytes:
    return b'{"question": ' + b"[" * depth + b"]" * depth + b"}"


def raw(body: dict) -> bytes:
    """As a client would send it: json.dumps writes NaN and Infinity, and escapes a lone
    surrogate as \\ud800."""
    return json.dumps(body).encode()


V1_BAD_CONTENT = [
    (chat([{"type": "text", "text": 123}]), "must be a string"),
    (chat([{"type": "text", "text": ["a"]}]), "must be a string"),
    (chat("\u200b\u2060\ufeff"), "empty"),
    (chat(f"{SECRET_WORD} \ud800"), "valid Unicode"),
    (chat(REFUND_QUESTION, stream=0), "stream"),
    (chat(REFUND_QUESTION, stream="yes"), "stream"),
    (chat(REFUND_QUESTION, n=True), "n"),
]

ASK_BAD_BODIES = [
    {"question": f"refund {SECRET_WORD} \ud800 policy"},
    {"question": f"{SECRET_WORD}?", "top_k": float("nan")},
    {"question": f"{SECRET_WORD}?", "top_k": float("inf")},
    {"question": "\u200b\u200c\u200d\u2060\ufeff\u3164"},
    {"question": f"{SECRET_WORD}?", "stream": 0}, {"question": f"{SECRET_WORD}?", "stream": "1"},
    {"question": f"{SECRET_WORD}?", "top_k": True}, {"question": f"{SECRET_WORD}?", "top_k": "5"},
]

BAD_PATH_FILTERS = [
    ("../secrets", "go up a folder"), ("/etc/passwd", "relative to the corpus folder"),
    ("guides/[abc", "never closes"),
]


def every_request() -> list[tuple[str, bytes, int, str]]:
    """All of the above as (path, body, status, phrase in the error)."""
    out = [(p, nested(1000), 400, "") for p in ("/ask", "/v1/chat/completions")]
    out += [("/v1/chat/completions", raw(body), 400, needle) for body, needle in V1_BAD_CONTENT]
    out += [("/ask", raw(body), 422, "") for body in ASK_BAD_BODIES]
    out += [("/ask", raw({"question": f"{SECRET_WORD} {REFUND_QUESTION}",
                          "filters": {"path": path}}), 422, needle)
            for path, needle in BAD_PATH_FILTERS]
    out += [("/ingest", raw({"rebuild": value}), 422, "") for value in (0, "true")]
    out.append(("/ask", raw({"question": f"{SECRET_WORD} " * 3000}), 422, ""))
    return out
