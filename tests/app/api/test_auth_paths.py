"""With RAG_API_KEY set, every path but the probes refuses a wrong key, in-process: JSON and
streaming /ask, /v1 (streaming too), documents, ingest, metrics, the docs, the page and its
files. The key check is one middleware every path goes through; tests/e2e checks it over HTTP."""
from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from tests.helpers import REFUND_QUESTION, serving

KEY = "k3y-in-process-5e6f"
PATHS = [("GET", "/", None), ("GET", "/static/app.js", None), ("GET", "/documents", None),
         ("GET", "/metrics", None), ("GET", "/docs", None), ("GET", "/openapi.json", None),
         ("GET", "/v1/models", None), ("GET", "/v1/models/ragfirst", None),
         ("POST", "/ask", {"question": REFUND_QUESTION}),
         ("POST", "/ask", {"question": REFUND_QUESTION, "stream": True}),
         ("POST", "/ingest", None),
         ("POST", "/v1/chat/completions",
          {"model": "ragfirst", "messages": [{"role": "user", "content": REFUND_QUESTION}]}),
         ("POST", "/v1/chat/completions",
          {"model": "ragfirst", "stream": True,
           "messages": [{"role": "user", "content": REFUND_QUESTION}]}),
         ("GET", "/no-such-page", None)]
WRONG = [{}, {"Authorization": f"Bearer {KEY[:-1]}x"}, {"X-API-Key": "wrong"},
         {"Authorization": "Basic " + base64.b64encode(b"me:wrong").decode()},
         {"Authorization": f"Bearer {KEY} extra"}, {"Authorization": KEY}]
RIGHT = [{"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY},
         {"Authorization": "Basic " + base64.b64encode(f"me:{KEY}".encode()).decode()}]


@pytest.fixture
def keyed(own_index):
    with serving(own_index.model_copy(update={"api_key": SecretStr(KEY)})) as client:
        yield client


def test_every_path_refuses_a_wrong_key(keyed):
    for method, path, body in PATHS:
        for headers in WRONG:
            r = keyed.request(method, path, headers=headers, json=body)
            assert r.status_code == 401, (method, path, headers)
            assert r.headers["www-authenticate"].startswith("Basic realm=")
            error = r.json()
            message = error["error"]["message"] if path.startswith("/v1/") else error["detail"]
            assert "API key" in message and KEY not in r.text


def test_the_right_key_opens_every_path_and_the_probes_need_none(keyed):
    for path in ("/healthz", "/readyz"):
        assert keyed.get(path).status_code == 200
    for method, path, body in PATHS:
        for headers in RIGHT:
            r = keyed.request(method, path, headers=headers, json=body)
            expected = 404 if path == "/no-such-page" else 200
            assert r.status_code == expected, (method, path, headers, r.text[:200])
