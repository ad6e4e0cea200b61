"""`ragfirst ask | ingest | serve | eval`: the console command pyproject installs, run as a user
runs it (the script in the virtual environment's bin/)."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import PYTHON, ROOT, subprocess_env
from tests.service_process import free_port, stop

RAGFIRST = str(Path(PYTHON).parent / "ragfirst")


def ragfirst(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([RAGFIRST, *args], cwd=ROOT, env=subprocess_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def test_the_command_is_installed_and_lists_its_commands():
    assert Path(RAGFIRST).exists(), "pyproject's [project.scripts] did not install ragfirst"
    out = ragfirst("--help")
    assert out.returncode == 0
    for command in ("ask", "chat", "ingest", "serve", "eval"):
        assert f"ragfirst {command}" in out.stdout
    assert ragfirst().returncode == 2  # no command: the usage, and a usage error
    unknown = ragfirst("search", "x")
    assert unknown.returncode == 2 and "unknown command 'search'" in unknown.stderr
    for command in ("ask", "chat", "ingest", "serve", "eval"):
        sub = ragfirst(command, "--help")
        assert sub.returncode == 0 and sub.stdout.startswith(f"usage: ragfirst {command}")
    assert ragfirst("--version").stdout.startswith("ragfirst ")


@pytest.mark.slow
def test_ingest_then_ask_in_process(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "herons.md").write_text("# Herons\n\nThe heron colony at Marsh Lake has 41 "
                                      "nests, counted in April.\n")
    env = dict(RAG_CORPUS_DIR=str(corpus), RAG_INDEX_DIR=str(tmp_path / "index"))
    out = ragfirst("ingest", "--json", **env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["files"]["added"] == ["herons.md"]
    table = ragfirst("ingest", **env)  # the readable form: nothing changed
    assert table.returncode == 0 and "unchanged" in table.stdout
    answer = ragfirst("ask", "How many nests does the heron colony at Marsh Lake have?", **env)
    assert answer.returncode == 0, answer.stderr
    assert "41 nests" in answer.stdout and "[1] herons.md" in answer.stdout
    missing = ragfirst("ingest", "--corpus", str(tmp_path / "nowhere"), **env)
    assert missing.returncode == 2 and "error:" in missing.stderr


@pytest.mark.slow
def test_serve_then_ask_it_over_http_with_a_key(starter_index, tmp_path):
    settings, _ = starter_index
    port = free_port()
    env = dict(RAG_INDEX_DIR=str(settings.index_dir), RAG_CORPUS_DIR=str(settings.corpus_dir),
               RAG_API_KEY="cli-key-123")
    log = tmp_path / "serve.log"
    with open(log, "w") as out:  # a file, not a pipe nobody reads while it serves
        proc = subprocess.Popen([RAGFIRST, "serve", "--port", str(port), "--no-watch"],
                                cwd=ROOT, env=subprocess_env(**env), stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "ragfirst serve did not become ready"
            time.sleep(0.2)
        assert httpx.get(f"{url}/readyz").json()["ingest"]["watching"] is False  # --no-watch
        out = ragfirst("ask", "--url", url, "When will API v1 be removed?", **env)
        assert out.returncode == 0, out.stderr
        assert "30 June 2026" in out.stdout and "[1] " in out.stdout
        wrong = ragfirst("ask", "--url", url, "When will API v1 be removed?",
                         **{**env, "RAG_API_KEY": "nope"})
        assert wrong.returncode == 2 and "HTTP 401" in wrong.stderr
    finally:
        stop(proc)
    down = ragfirst("ask", "--url", url, "anything", **env)
    assert down.returncode == 2 and "cannot reach" in down.stderr


def test_bad_settings_are_one_error_line_not_a_traceback():
    for args, env, name in ((["serve", "--port", "99999"], {}, "RAG_PORT"),
                            (["ask", "anything"], {"RAG_TOP_K": "abc"}, "RAG_TOP_K"),
                            (["ingest"], {"RAG_CHUNK_TOKENS": "-1"}, "RAG_CHUNK_TOKENS"),
                            (["serve"], {"RAG_MAX_REQUEST_BYTES": "0"}, "RAG_MAX_REQUEST_BYTES"),
                            (["serve"], {"RAG_MAX_UPLOAD_BYTES": "lots"}, "RAG_MAX_UPLOAD_BYTES"),
                            (["serve"], {"RAG_HTTP_UPLOAD_TIMEOUT_S": "-1"},
                             "RAG_HTTP_UPLOAD_TIMEOUT_S"),
                            (["serve"], {"RAG_HTTP_HEADER_TIMEOUT_S": "soon"},
                             "RAG_HTTP_HEADER_TIMEOUT_S"),
                            (["serve"], {"RAG_HTTP_LIMIT_CONCURRENCY": "-3"},
                             "RAG_HTTP_LIMIT_CONCURRENCY"),
                            (["chat"], {"RAG_CONDENSE_TIMEOUT_S": "0"}, "RAG_CONDENSE_TIMEOUT_S"),
                            (["ask", "anything"], {"RAG_EXTRACTIVE_EMBED": "sometimes"},
                             "RAG_EXTRACTIVE_EMBED"),
                            (["ingest"], {"RAG_STORE": "mysql"}, "RAG_STORE"),
                            (["ingest"], {"RAG_STORE": "postgres"}, "RAG_DATABASE_URL"),
                            (["serve"], {"RAG_DATABASE_URL": "mysql://x"}, "RAG_DATABASE_URL"),
                            (["ingest"], {"RAG_DATABASE_SCHEMA": "Bad-Name"},
                             "RAG_DATABASE_SCHEMA"),
                            (["ask", "anything"], {"RAG_HNSW_EF_SEARCH": "0"},
                             "RAG_HNSW_EF_SEARCH"),
                            (["ingest"], {"RAG_HNSW_M": "1"}, "RAG_HNSW_M"),
                            (["ingest"], {"RAG_HNSW_EF_CONSTRUCTION": "many"},
                             "RAG_HNSW_EF_CONSTRUCTION"),
                            (["serve"], {"RAG_ANN_MIN_CHUNKS": "0"}, "RAG_ANN_MIN_CHUNKS"),
                            (["ingest"], {"RAG_ANN_MIN_CHUNKS": "1e6"}, "RAG_ANN_MIN_CHUNKS"),
                            (["ingest"], {"RAG_EMBEDDER": "openai"}, "RAG_EMBED_BASE_URL"),
                            (["ingest"], {"RAG_EMBEDDER": "openai",
                                          "RAG_EMBED_BASE_URL": "gpu-box:8080/v1"},
                             "RAG_EMBED_BASE_URL"),
                            (["serve"], {"RAG_EMBEDDER": "openai",
                                         "RAG_EMBED_BASE_URL": "http://gpu-box:8080/v1"},
                             "RAG_EMBED_MODEL"),
                            (["ingest"], {"RAG_EMBEDDER": "openai",
                                          "RAG_EMBED_BASE_URL": "http://gpu-box:8080/v1",
                                          "RAG_EMBED_MODEL": "nomic-embed-text"},
                             "RAG_EMBED_TOKENIZER"),
                            (["ingest"], {"RAG_EMBED_TIMEOUT_S": "0"}, "RAG_EMBED_TIMEOUT_S"),
                            (["ingest"], {"RAG_EMBED_RETRIES": "many"}, "RAG_EMBED_RETRIES"),
                            (["ingest"], {"RAG_EMBED_MAX_TOKENS": "2"}, "RAG_EMBED_MAX_TOKENS"),
                            (["ingest"], {"RAG_EMBED_BACKEND": "tensorflow"},
                             "RAG_EMBED_BACKEND"),
                            (["serve"], {"RAG_EMBED_BACKEND": "int8"}, "RAG_EMBED_BACKEND"),
                            (["ingest"], {"RAG_MAX_UNZIPPED_BYTES": "0"},
                             "RAG_MAX_UNZIPPED_BYTES"),
                            (["ingest"], {"RAG_MAX_SHEET_CELLS": "lots"}, "RAG_MAX_SHEET_CELLS"),
                            (["ingest"], {"RAG_OCR": "maybe"}, "RAG_OCR"),
                            (["ingest"], {"RAG_PDF_READER": "mupdf"}, "RAG_PDF_READER"),
                            (["ingest"], {"RAG_EMBED_BATCH_SIZE": "0"}, "RAG_EMBED_BATCH_SIZE"),
                            (["serve"], {"RAG_EMBED_BATCH_SIZE": "ten"},
                             "RAG_EMBED_BATCH_SIZE"),
                            (["serve"], {"RAG_LEXICAL_INDEX": "bm25s"}, "RAG_LEXICAL_INDEX")):
        out = ragfirst(*args, **env)
        assert out.returncode == 2 and out.stderr.startswith("error: invalid settings: ")
        assert name in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_eval_runs_through_the_command(starter_index, tmp_path):
    settings, _ = starter_index
    out = ragfirst("eval", "beir", str(tmp_path / "no-dataset"),
                   RAG_INDEX_DIR=str(tmp_path / "index"))
    assert out.returncode == 2 and "error:" in out.stderr  # the eval's own error, readable


@pytest.mark.slow
def test_the_wheel_carries_what_the_commands_read(tmp_path):
    """Built and installed as a user would get it (no tests/ folder beside it): the web page and
    the labelled starter questions are in the wheel, and `eval starter` runs from it."""
    import shutil
    import zipfile

    source = tmp_path / "source"  # a copy: setuptools writes build/ beside what it builds
    for folder in ("app", "ingest"):
        shutil.copytree(ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    build = subprocess.run([PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True,
                           text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("ragfirst-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"app/eval/data/starter_eval.jsonl", "app/eval/data/starter_conversations.jsonl",
            "app/web/index.html", "app/web/app.js"} <= names
    assert not any(n.startswith("tests/") for n in names)
    site = tmp_path / "site"
    install = subprocess.run([PYTHON, "-m", "pip", "install", "--no-deps", "--target", str(site),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    env = subprocess_env(RAG_EMBEDDER="hashing", RAG_CORPUS_DIR=str(ROOT / "corpus"),
                         RAG_INDEX_DIR=str(tmp_path / "index"))
    env["PYTHONPATH"] = str(site)  # the installed copy, not this source tree
    out = subprocess.run([PYTHON, "-c", "import app, sys; print(app.__file__); "
                          "from app.eval.__main__ import main; "
                          "sys.exit(main(['starter', '--split', 'test', '--json']))"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    where, report = out.stdout.split("\n", 1)
    assert where.startswith(str(site))
    assert json.loads(report)["metrics"]["questions"] > 20


def test_bad_collections_and_keys_files_are_one_error_line(tmp_path):
    bad = tmp_path / "collections.toml"
    bad.write_text('[collections."Not OK"]\ncorpus = "x"\n')
    keys = tmp_path / "keys.toml"
    keys.write_text('[[keys]]\nname = "k"\nsha256 = "plain-text-key"\ncollections = ["*"]\n'
                    'role = "read"\n')
    for args, env, expected in ((["ingest"], {"RAG_COLLECTIONS_FILE": str(bad)}, "Not OK"),
                                (["serve"], {"RAG_COLLECTIONS_FILE": str(bad)}, "Not OK"),
                                (["serve"], {"RAG_KEYS_FILE": str(keys)}, "64 hex digits"),
                                (["serve"], {"RAG_KEYS_FILE": str(tmp_path / "no.toml")},
                                 "does not exist")):
        out = ragfirst(*args, **env)
        assert out.returncode == 2 and out.stderr.startswith("error: "), out.stderr
        assert expected in out.stderr and "Traceback" not in out.stderr
        assert out.stderr.count("\n") == 1


def test_ingest_takes_every_collection_or_the_ones_named(tmp_path):
    for name in ("hr", "eng"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.md").write_text(f"# {name}\n\nThe {name} handbook.\n")
    (tmp_path / "collections.toml").write_text(
        '[collections.hr]\ncorpus = "hr"\n[collections.eng]\ncorpus = "eng"\n')
    env = dict(RAG_COLLECTIONS_FILE=str(tmp_path / "collections.toml"),
               RAG_INDEX_DIR=str(tmp_path / "index"), RAG_EMBEDDER="hashing")
    every = ragfirst("ingest", "--json", **env)
    assert every.returncode == 0, every.stderr
    reports = json.loads(every.stdout)["collections"]
    assert {n: r["files"]["added"] for n, r in reports.items()} == {"hr": ["hr.md"],
                                                                   "eng": ["eng.md"]}
    assert (tmp_path / "index" / "hr").is_dir() and (tmp_path / "index" / "eng").is_dir()
    (tmp_path / "eng" / "more.md").write_text("# More\n\nMore of the eng handbook.\n")
    one = ragfirst("ingest", "--collection", "hr", **env)
    assert one.returncode == 0 and one.stdout.startswith("collection hr: Ingested")
    assert "collection eng" not in one.stdout
    unknown = ragfirst("ingest", "--collection", "ops", **env)
    assert unknown.returncode == 2 and "no collection named 'ops' (known: hr, eng)" in unknown.stderr
    mixed = ragfirst("ingest", "--corpus", str(tmp_path / "hr"), **env)
    assert mixed.returncode == 2 and "do not go with RAG_COLLECTIONS_FILE" in mixed.stderr
    answer = ragfirst("ask", "--collection", "hr", "What is the handbook?",
                      RAG_ABSTAIN_THRESHOLD="-1", **env)
    assert answer.returncode == 0 and "hr.md" in answer.stdout and "eng.md" not in answer.stdout
    nameless = ragfirst("ask", "What is the handbook?", **env)  # no `default` in the file
    assert nameless.returncode == 2 and "no collection named 'default'" in nameless.stderr
    (tmp_path / "eng").rename(tmp_path / "gone")  # one collection failing: the other goes on
    (tmp_path / "hr" / "new.md").write_text("# New\n\nA new hr page.\n")
    partly = ragfirst("ingest", "--json", **env)
    assert partly.returncode == 2 and "error:" in partly.stderr
    assert json.loads(partly.stdout)["collections"]["hr"]["files"]["added"] == ["new.md"]
