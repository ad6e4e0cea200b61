"""The hostile requests of tests/hostile.py, sent to the real server (uvicorn, over HTTP):
each gets its documented 4xx in the error shape of its path, no 500, and nothing they held
reaches the server's log; the service answers after all of them."""
from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers import REFUND_QUESTION, SMALL_CORPUS, write
from tests.hostile import SECRET_WORD, every_request
from tests.service_process import running_service, service_log

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    for name, text in SMALL_CORPUS.items():
        write(base / "corpus", name, text)
    with running_service(base / "index", base / "corpus", RAG_EMBEDDER="hashing") as url:
        assert httpx.post(f"{url}/ingest", timeout=60).status_code == 200
        yield url, service_log(base / "index", url)


def test_each_gets_its_4xx_and_none_reaches_the_log(service):
    url, log = service
    with httpx.Client(base_url=url, timeout=30) as http:
        for path, body, status, needle in every_request():
            r = http.post(path, content=body, headers={"content-type": "application/json"})
            assert r.status_code == status, (path, body[:80], r.text[:300])
            error = r.json()["error"]["message"] if path.startswith("/v1/") else r.json()["detail"]
            assert needle in str(error), (path, r.text[:300])
            assert len(r.content) < 4000  # nothing big echoed back
        assert http.post("/ask", json={"question": REFUND_QUESTION}).status_code == 200
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    statuses = [line["status"] for line in lines if line["msg"] == "request"]
    assert sum(400 <= s < 500 for s in statuses) == len(every_request())  # each one logged
    assert 500 not in statuses and not any("exc" in line for line in lines)
    assert SECRET_WORD not in text
