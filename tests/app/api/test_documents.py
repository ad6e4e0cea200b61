"""GET /documents and POST /ingest in-process: the listing's shape, an ingest's report, and the
refusals."""
from __future__ import annotations

from tests.helpers import REFUND_QUESTION, serving, write


def test_documents_lists_what_is_indexed_and_what_was_refused(client):
    r = client.get("/documents")
    assert r.status_code == 200
    body = r.json()
    assert body["index_generation"] == 1
    assert [d["path"] for d in body["documents"]] == ["guides/cafe.md", "kb/refunds.md",
                                                      "kb/uptime.txt"]
    doc = body["documents"][0]
    assert set(doc) == {"path", "sha256", "size", "kind", "chunks", "ingested_at"}
    assert len(doc["sha256"]) == 64 and doc["kind"] == "markdown" and doc["chunks"] == 1
    assert doc["ingested_at"].endswith("+00:00")
    (refused,) = body["refused"]
    assert refused["path"] == "broken.pdf" and refused["size"] == 17 and refused["reason"]


def test_post_ingest_reports_the_run_and_the_answer_follows(own_index):
    with serving(own_index) as client:
        write(own_index.corpus_dir, "kb/drone.md", "# Drone\n\nThe Osprey-7 drone carries a "
                                                   "payload of 4.2 kilograms.\n")
        report = client.post("/ingest").json()
        assert report["files"]["added"] == ["kb/drone.md"] and report["generation"] == 2
        assert report["run"] == 1 and set(report["chunks"]) == {"added", "removed",
                                                                "embedded", "truncated"}
        body = client.post("/ask", json={"question": "What payload does the Osprey-7 "
                                                     "drone carry?"}).json()
        assert body["index_generation"] == 2 and "4.2 kilograms" in body["answer"]
        rebuilt = client.post("/ingest", json={"rebuild": True}).json()
        assert rebuilt["generation"] == 3 and len(rebuilt["files"]["changed"]) == 4
        assert client.post("/ingest", json={"rebuild": "maybe"}).status_code == 422
        assert client.post("/ingest", json={"surprise": 1}).status_code == 422


def test_post_ingest_without_a_corpus_is_409_and_the_index_keeps_serving(own_index):
    with serving(own_index) as client:
        own_index.corpus_dir.rename(own_index.corpus_dir.with_name("away"))
        r = client.post("/ingest")
        assert r.status_code == 409 and "does not exist" in r.json()["detail"]
        assert client.get("/documents").json()["index_generation"] == 1
        assert client.get("/readyz").json()["ingest"]["last"]["ok"] is False
        assert not client.post("/ask", json={"question": REFUND_QUESTION}).json()["abstained"]
