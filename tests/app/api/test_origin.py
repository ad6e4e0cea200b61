"""What a browser could be made to send (app/access/origin.py): a Host the service does not
answer to (DNS rebinding) is 400, a request that changes something from another site
(cross-site request forgery) is 403 and changes nothing; the service's own page and clients
that are not browsers go through."""
from __future__ import annotations

import pytest

from app.access.origin import LOOPBACK_HOSTS, allowed_hosts, host_name
from tests.helpers import REFUND_QUESTION, serving

FORGED = [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
          {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another origin
          {"Origin": "null"}, {"Origin": "http://127.0.0.1:9999"},
          {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "cross-site"}]
OWN_PAGE = [{}, {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"},
            {"Sec-Fetch-Site": "none"}]  # typed in the address bar, a bookmark


@pytest.mark.parametrize("headers", FORGED)
def test_a_write_from_another_site_is_refused_and_writes_nothing(own_index, headers):
    with serving(own_index) as client:
        upload = client.post("/collections/default/documents", headers=headers,
                             files={"file": ("forged.md", b"# Forged\n\nPlanted text.\n")},
                             data={"overwrite": "true"})
        assert upload.status_code == 403 and "own page" in upload.json()["detail"]
        assert not (own_index.corpus_dir / "forged.md").exists()
        for method, path, body in (("POST", "/ask", {"question": REFUND_QUESTION}),
                                   ("POST", "/ingest", {}),
                                   ("DELETE", "/collections/default/documents/kb/refunds.md",
                                    None)):
            assert client.request(method, path, headers=headers, json=body).status_code == 403
        assert (own_index.corpus_dir / "kb/refunds.md").exists()
        chat = client.post("/v1/chat/completions", headers=headers, json={
            "model": "ragfirst", "messages": [{"role": "user", "content": REFUND_QUESTION}]})
        assert chat.status_code == 403 and "error" in chat.json()  # OpenAI's shape
        assert client.get("/documents", headers=headers).status_code == 200  # reads: fine


@pytest.mark.parametrize("headers", OWN_PAGE)
def test_the_own_page_and_other_clients_go_through(client, headers):
    assert client.post("/ask", headers=headers,
                       json={"question": REFUND_QUESTION}).status_code == 200


def test_a_host_the_service_does_not_answer_to_is_400(client):
    for host in ("evil.example", "rebind.attacker.test:8000", "127.0.0.1.evil.example"):
        for path in ("/", "/documents", "/healthz"):
            r = client.get(path, headers={"Host": host})
            assert r.status_code == 400 and "RAG_ALLOWED_HOSTS" in r.json()["detail"]
    for host in ("127.0.0.1:8000", "localhost", "[::1]:8000"):
        assert client.get("/documents", headers={"Host": host}).status_code == 200


def test_allowed_hosts_setting(small_index):
    assert allowed_hosts(None, "127.0.0.1") == LOOPBACK_HOSTS
    assert allowed_hosts(None, "0.0.0.0") is None  # a served address: any, unless listed
    assert allowed_hosts("Docs.Example.com:443, localhost", "0.0.0.0") == {"docs.example.com",
                                                                          "localhost"}
    assert allowed_hosts("*", "127.0.0.1") is None
    assert [host_name(h) for h in ("[::1]:8000", "::1", "EXAMPLE.com:80", "a.b")] == [
        "::1", "::1", "example.com", "a.b"]
    with serving(small_index.model_copy(update={"allowed_hosts": "docs.example.com"})) as c:
        assert c.get("/documents", headers={"Host": "docs.example.com"}).status_code == 200
        assert c.get("/documents").status_code == 400  # 127.0.0.1 is not listed any more
