"""Run the real service: `python -m app` under uvicorn in a subprocess, reached over HTTP."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

from tests.helpers import PYTHON, ROOT, subprocess_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_service(index_dir: Path, corpus_dir: Path, timeout: float = 180,
                    **env: str) -> Iterator[str]:
    """Start the service on a free port; yield its base URL once /healthz answers. The
    corpus watcher is off unless RAG_WATCH="true" is passed: most tests share one index that
    they must not write to."""
    env.setdefault("RAG_WATCH", "false")
    port = free_port()
    log = index_dir.parent / f"service-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [PYTHON, "-m", "app"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env=subprocess_env(RAG_INDEX_DIR=str(index_dir), RAG_CORPUS_DIR=str(corpus_dir),
                               RAG_PORT=str(port), **env))
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"service exited with {proc.returncode}:\n{log.read_text()}")
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"service did not start in {timeout} s:\n{log.read_text()}")
                time.sleep(0.2)
            yield url
        finally:
            stop(proc)


def copy_starter(starter_index, dest: Path) -> tuple[Path, Path]:
    """A private copy of the session's starter corpus and index (copied, not re-ingested), for
    a test that writes to them: (index folder, corpus folder) under `dest`."""
    settings, _ = starter_index
    shutil.copytree(settings.corpus_dir, dest / "corpus")
    shutil.copytree(settings.index_dir, dest / "index")
    return dest / "index", dest / "corpus"


def service_log(index_dir: Path, url: str) -> Path:
    """The file a service started by `running_service` writes its output (its log) to."""
    return index_dir.parent / f"service-{url.rsplit(':', 1)[1]}.log"


def stop(proc: subprocess.Popen, grace: float = 20) -> None:
    """Terminate a child server, killing it if it does not exit within `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sse_events(url: str, body: dict, timeout: float = 60,
               headers: dict | None = None) -> tuple[int, list[tuple[str, dict]]]:
    """POST /ask with `body` (stream: true added) and read the Server-Sent Events: (HTTP
    status, [(event, data)]). A non-200 answer gives [("http", its JSON body)]."""
    events, event = [], None
    with httpx.stream("POST", f"{url}/ask", json={**body, "stream": True},
                      headers=headers, timeout=timeout) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, [("http", r.json())]
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
    return 200, events
