"""`make fuzz`: schemathesis against the real service, with and without an API key.

The service (`python -m app`, the small test corpus, the hashing embedder) is started on a free
port; schemathesis reads its /openapi.json and sends what the schema allows and what it does
not, checking every answer: no 500, every status and content type documented, bodies matching
their schemas. Bounded in examples per operation (`--examples`), so it fits in CI. Exits with
schemathesis' status: 0 when nothing was found."""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from tests.helpers import PYTHON, SMALL_CORPUS, write
from tests.service_process import running_service

KEY = "fuzz-key-7d1e"
EXCLUDED: list[str] = []  # checks left out, each with its reason beside it
CONFIG = Path(__file__).with_name("schemathesis.toml")  # per-operation settings, with reasons
CPYTHON_AST_BUG = "AST constructor recursion depth mismatch"


def schemathesis(url: str, examples: int, headers: dict[str, str]) -> int:
    cmd = [str(Path(PYTHON).parent / "schemathesis"), "--config-file", str(CONFIG),
           "run", f"{url}/openapi.json",
           "--checks", "all", "--max-examples", str(examples), "--workers", "2",
           "--request-timeout", "60", "--suppress-health-check", "all", "--seed", "7"]
    if EXCLUDED:
        cmd += ["--exclude-checks", ",".join(EXCLUDED)]
    for name, value in headers.items():
        cmd += ["--header", f"{name}: {value}"]
    for attempt in (1, 2):
        print("$", " ".join(cmd), flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        print(done.stdout, done.stderr, sep="\n", flush=True)
        # CPython 3.11's ast.parse can raise this SystemError when called deep in a stack (its
        # AST recursion-depth tracking, CPython gh-106905): Hypothesis hit it describing a
        # strategy in one fresh-clone run, a crash of the tool, not a finding about the service. Run once more then;
        # anything else schemathesis reports fails at once.
        if done.returncode == 0 or CPYTHON_AST_BUG not in done.stdout + done.stderr:
            return done.returncode
        print(f"schemathesis crashed on CPython's AST bug (attempt {attempt}); once more",
              flush=True)
    return done.returncode


def run(examples: int) -> int:
    with tempfile.TemporaryDirectory(prefix="ragfirst-fuzz-") as tmp:
        base = Path(tmp)
        for name, text in SMALL_CORPUS.items():
            write(base / "corpus", name, text)
        status = 0
        for key in (None, KEY):
            env = {"RAG_EMBEDDER": "hashing", "RAG_WATCH": "false"}
            if key:
                env["RAG_API_KEY"] = key
            index = base / f"index-{'key' if key else 'open'}"
            with running_service(index, base / "corpus", **env) as url:
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                httpx.post(f"{url}/ingest", headers=headers, timeout=120).raise_for_status()
                status = schemathesis(url, examples, headers) or status
        return status


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=100, help="per operation (default: 100)")
    return run(p.parse_args(argv).examples)


if __name__ == "__main__":
    sys.exit(main())
