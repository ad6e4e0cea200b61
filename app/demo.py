"""`make demo`: the freshness story as a transcript. Starts the service (watching the corpus),
asks a question the corpus cannot answer, writes a document that answers it, edits it, deletes
it, and shows what the service answers after each step and how long each change took to show.
The corpus is left as it was found; the service is stopped at the end."""
from __future__ import annotations

import argparse
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

from app.answer import Answer
from app.ask import format_answer
from app.settings import Settings
from ingest.errors import SettingsError

QUESTION = "Who won the 2026 office chess tournament?"
DEMO_FILE = "demo-office-chess.md"
FIRST = ("# Office chess tournament\n\nThe 2026 office chess tournament was won by Priya "
         "Raman, who beat Tomas Ek in the final round on 14 March.\n")
EDITED = ("# Office chess tournament\n\nThe 2026 office chess tournament was won by Tomas Ek: "
          "the final against Priya Raman was replayed on 21 March after a clock fault.\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def corpus_fingerprint(corpus: Path) -> dict[str, str]:
    """Each file's content hash, by path: equal before and after means untouched."""
    return {p.relative_to(corpus).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(corpus.rglob("*")) if p.is_file()}


class Demo:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=120)

    def ask(self) -> Answer:
        r = self.http.post("/ask", json={"question": QUESTION})
        r.raise_for_status()
        return Answer.model_validate(r.json())

    def until(self, done, what: str, timeout: float = 30.0) -> tuple[Answer, float]:
        """Ask every 50 ms until `done(body)`; (that body, seconds since the call)."""
        start = time.perf_counter()
        while True:
            body = self.ask()
            if done(body):
                return body, time.perf_counter() - start
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"{what}: not seen within {timeout:.0f} s")
            time.sleep(0.05)

    def show(self, answer: Answer) -> None:
        print(textwrap.indent(format_answer(answer), "    "), "\n")


def _quoted(text: str) -> str:
    return textwrap.indent(text.strip(), "    | ", predicate=lambda line: True)


def _cites(answer: Answer) -> bool:
    return DEMO_FILE in {c.path for c in answer.citations}


def run(demo: Demo, path: Path) -> None:
    print(f"1. A question the corpus cannot answer:\n    Q: {QUESTION}\n")
    body = demo.ask()
    demo.show(body)
    if not body.abstained:
        print("    (the corpus already answers it; the demo goes on anyway)\n")

    print(f"2. A new document is written: {path}\n"
          + _quoted(FIRST) + "\n")
    path.write_text(FIRST)
    body, took = demo.until(lambda b: _cites(b) and "Priya Raman" in b.text, "the new file")
    print(f"    Citable {took:.2f} s after it was written (no restart, no ingest command). "
          "The same question now:\n")
    demo.show(body)

    print("3. The document is edited: the final was replayed.\n"
          + _quoted(EDITED) + "\n")
    path.write_text(EDITED)
    body, took = demo.until(lambda b: _cites(b) and "Tomas Ek:" in b.text, "the edit")
    print(f"    The answer changed {took:.2f} s after the edit:\n")
    demo.show(body)

    print("4. The document is deleted.\n")
    path.unlink()
    body, took = demo.until(lambda b: not _cites(b), "the deletion")
    print(f"    No longer cited {took:.2f} s after the deletion:\n")
    demo.show(body)


def _start_service(corpus: Path) -> tuple[subprocess.Popen, str, str]:
    """`python -m app` on a free port, watching the corpus: (process, URL, log file)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile("w+", prefix="ragfirst-demo-", suffix=".log",
                                      delete=False)
    env = {**os.environ, "RAG_PORT": str(port), "RAG_HOST": "127.0.0.1", "RAG_WATCH": "true"}
    print(f"Starting the service on {url}, watching {corpus}/ (log: {log.name})")
    proc = subprocess.Popen([sys.executable, "-m", "app"], stdout=log, stderr=subprocess.STDOUT,
                            env=env)
    return proc, url, log.name


def _wait_ready(demo: Demo, proc: subprocess.Popen, log: str) -> None:
    """Until the service is up and its catch-up ingest is done (the first builds the index)."""
    started = time.perf_counter()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited ({proc.returncode}); see {log}")
        if time.perf_counter() - started > 600:
            raise RuntimeError(f"the service was not ready in 10 minutes; see {log}")
        try:
            r = demo.http.get("/readyz")
            ingest = r.json().get("ingest", {})
            if r.status_code == 200 and ingest.get("runs", 0) >= 1:
                break
            if ingest.get("failures"):
                raise RuntimeError(f"the service's ingest failed: {ingest['last']['error']}")
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    info = r.json()
    print(f"Ready in {time.perf_counter() - started:.1f} s: index generation "
          f"{info['index_generation']}, {info['documents']} documents, "
          f"{info['chunks']} chunks.\n")


def _clean_up(demo: Demo, proc: subprocess.Popen, path: Path) -> None:
    """Remove the demo's file (and let the watcher see it go), then stop the service."""
    if path.exists():
        path.unlink()
        try:  # let the watcher take it out of the index before the service stops
            demo.until(lambda b: not _cites(b), "clean-up", timeout=10)
        except Exception:
            pass
    print("Stopping the service.")
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m app.demo", description=__doc__).parse_args(argv)
    try:
        settings = Settings.load()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    corpus = settings.corpus_dir
    path = corpus / DEMO_FILE
    if not corpus.is_dir():
        print(f"error: corpus folder {corpus} does not exist", file=sys.stderr)
        return 2
    if path.exists():
        print(f"error: {path} exists; the demo will not overwrite it", file=sys.stderr)
        return 2
    before = corpus_fingerprint(corpus)
    proc, url, log = _start_service(corpus)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill still cleans up
    demo = Demo(url)
    status = 0
    try:
        _wait_ready(demo, proc, log)
        run(demo, path)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        status = 130
    except Exception as exc:  # say what failed, then still clean up
        print(f"error: {exc}", file=sys.stderr)
        status = 1
    finally:
        _clean_up(demo, proc, path)
        after = corpus_fingerprint(corpus)
        same = "as it was found" if after == before else "CHANGED (this is a bug)"
        print(f"The corpus is {same}: {len(after)} files.")
        if after != before:
            status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
