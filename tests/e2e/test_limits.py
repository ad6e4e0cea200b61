"""What a client can make the real server hold, over raw sockets: headers that never end, a body
that trickles, a huge announced body, many idle connections. Each is cut off (the connection
closed, a 408 or a 413) while the service goes on answering."""
from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.helpers import SMALL_CORPUS, write
from tests.service_process import running_service

pytestmark = pytest.mark.slow
LIMITS = {"RAG_EMBEDDER": "hashing", "RAG_HTTP_HEADER_TIMEOUT_S": "1",
          "RAG_HTTP_BODY_TIMEOUT_S": "1", "RAG_MAX_REQUEST_BYTES": "65536"}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    base = tmp_path_factory.mktemp("limits")
    for name, text in SMALL_CORPUS.items():
        write(base / "corpus", name, text)
    with running_service(base / "index", base / "corpus", **LIMITS) as url:
        assert httpx.post(f"{url}/ingest", timeout=60).status_code == 200
        yield url


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=20)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:  # closed with our bytes unread: what came before counts
        pass
    return data


def test_headers_that_never_end_get_the_connection_closed(service):
    socks = [connect(service) for _ in range(40)]
    for sock in socks:
        sock.sendall(b"POST /ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n")
    for sock in socks:  # closed by the server: recv sees the end (it would block for ever)
        assert read_all(sock) == b""
        sock.close()
    assert httpx.get(f"{service}/healthz").status_code == 200


def test_a_trickled_body_is_a_408(service):
    sock = connect(service)
    sock.sendall(b"POST /ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n" + b'{"question": "')
    reply = read_all(sock).decode()
    sock.close()
    assert reply.startswith("HTTP/1.1 408") and "connection: close" in reply.lower()
    assert "did not arrive in time" in json.loads(reply.split("\r\n\r\n", 1)[1])["detail"]


def test_a_huge_body_is_refused_before_it_is_sent(service):
    sock = connect(service)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n"
                 + b"{" + b" " * 1000)
    reply = read_all(sock).decode()  # answered and closed without the 100 MB (or it times out)
    sock.close()
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    body = json.loads(reply.split("\r\n\r\n", 1)[1])  # under /v1: OpenAI's error shape
    assert "RAG_MAX_REQUEST_BYTES" in body["error"]["message"]


def test_a_chunked_body_over_the_limit_is_a_413_and_the_rest_is_not_read(service):
    sock = connect(service)
    sock.sendall(b"POST /ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    reply = b""
    for _ in range(64):  # 4 MB offered against a 64 KB limit
        try:
            sock.sendall(piece)
        except OSError:  # closed by the server: it stopped reading
            break
    reply = read_all(sock).decode(errors="replace")
    sock.close()
    assert reply.startswith("HTTP/1.1 413") and "connection: close" in reply.lower()


def test_the_service_answers_after_all_of_it(service):
    r = httpx.post(f"{service}/ask", json={"question": "monthly uptime of the Business plan"},
                   timeout=60)
    assert r.status_code == 200 and "99.9%" in r.json()["answer"]
