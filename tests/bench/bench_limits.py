"""`make bench-limits`: what hostile clients make the real service hold (`python -m app`,
hashing embedder, small corpus): its resident memory idle, after a 100 MB chunked body, after
a 20 MB question, with 3,000 connections that send half a header and after the header
deadline; and whether it still answers."""
from __future__ import annotations

import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.helpers import SMALL_CORPUS, write
from tests.service_process import running_service

CONNECTIONS = 3000


def rss_mb(port: int) -> float:
    """Resident memory of the process listening on `port` (found with ss)."""
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True,
                         text=True, check=True).stdout
    pid = re.search(r"pid=(\d+)", out).group(1)
    kb = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))
    return round(kb / 1024, 1)


def megabytes(n: int):
    for _ in range(n):
        yield b"x" * (1 << 20)


def half_headers(port: int) -> list[socket.socket]:
    socks = []
    for _ in range(CONNECTIONS):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /ask HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        except OSError:
            break
        socks.append(s)
    return socks


def still_open(socks: list[socket.socket]) -> int:
    alive = 0
    for s in socks:
        s.settimeout(0.01)
        try:
            alive += s.recv(1) != b""
        except socket.timeout:
            alive += 1
        except OSError:
            pass
        s.close()
    return alive


def probe(url: str) -> list[tuple[str, str, float]]:
    port = int(url.rsplit(":", 1)[1])
    json_type = {"content-type": "application/json"}
    rows = [("idle", "", rss_mb(port))]
    r = httpx.post(f"{url}/ask", content=megabytes(100), headers=json_type, timeout=60)
    rows.append(("100 MB chunked body", f"{r.status_code}, {len(r.content)} bytes back",
                 rss_mb(port)))
    big = b'{"question": "' + b"a" * (20 << 20) + b'"}'
    r = httpx.post(f"{url}/ask", content=big, headers=json_type, timeout=60)
    rows.append(("20 MB question", f"{r.status_code}, {len(r.content)} bytes back", rss_mb(port)))
    socks = half_headers(port)
    rows.append((f"{len(socks)} connections, half a header each", "accepted", rss_mb(port)))
    time.sleep(12)  # past the 10 s header deadline
    rows.append(("12 s later", f"{still_open(socks)} still open", rss_mb(port)))
    r = httpx.post(f"{url}/ask", json={"question": "refund policy"}, timeout=30)
    rows.append(("then a question", str(r.status_code), rss_mb(port)))
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        base = Path(tmp)
        for name, text in SMALL_CORPUS.items():
            write(base / "corpus", name, text)
        with running_service(base / "index", base / "corpus", RAG_EMBEDDER="hashing") as url:
            httpx.post(f"{url}/ingest", timeout=60).raise_for_status()
            rows = probe(url)
    print("| what the clients did | the service's answer | its memory (MB) |")
    print("|---|---|---|")
    for what, answer, mb in rows:
        print(f"| {what} | {answer} | {mb} |")


if __name__ == "__main__":
    main()
