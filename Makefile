# ragfirst — every entry point a newcomer needs. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev
PEER   := .venv-peer
ARGS   ?=
Q      ?= What does the Business plan cost?
# Where pip finds the CPU build of torch. Empty: pip's own configuration (these build machines
# carry the CPU wheel locally). Elsewhere: make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
# llama.cpp built for AVX2 on x86-64, not for this CPU (-march=native): on CPUs with AMX
# (Sapphire Rapids) the native build's AMX kernels crash decoding a prompt in these VMs (a
# segfault in llama_decode, 0.3.35 and 0.3.36, seen 2026-12-03); AVX2 runs on any x86-64 of
# the last decade and is plenty for the tests' 135M model. Elsewhere: llama.cpp's defaults.
LLAMA_CMAKE ?= $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON)

.PHONY: help install install-dev system-deps run ingest serve ask demo eval eval-beir test test-fast fuzz bench bench-ingest bench-formats bench-ask bench-ann bench-extractive bench-freshness bench-middleware bench-limits bench-peer peer-venv peer-try corpus-pdfs corpus-docs clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# The CPU build of torch first: PyPI's default build pulls gigabytes of CUDA packages.
	$(PY) -m pip install torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -e .
	touch $(STAMP)

$(DEV): $(STAMP) pyproject.toml
	# Test tools, and llama-cpp-python (built from source, ~6 min) for the real LLM tests.
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(PY) -m pip install -e '.[dev,llamacpp]'
	touch $(DEV)

install: $(STAMP)  ## create .venv and install what the service needs

install-dev: $(DEV)  ## also install the test tools and the llama.cpp extra

system-deps:  ## chromium and docker-compose for the browser and compose tests (apt, when root)
	@sh scripts/system-deps.sh

run: $(STAMP)  ## ingest corpus/, start the service, ask a sample question, keep serving
	$(PY) -m app.quickstart $(ARGS)

ingest: $(STAMP)  ## (re-)ingest corpus/ into index/ incrementally; ARGS=--rebuild for a full rebuild
	$(PY) -m ingest $(ARGS)

serve: $(STAMP)  ## serve the API on RAG_HOST:RAG_PORT (default 127.0.0.1:8000), watching corpus/
	$(PY) -m app

ask: $(STAMP)  ## answer Q="..." in-process and print the answer with its sources
	$(PY) -m app.ask "$(Q)" $(ARGS)

demo: $(STAMP)  ## freshness: a new file answered, edited, deleted, all without a restart
	$(PY) -m app.demo

eval: $(STAMP)  ## answer quality on the labelled starter questions and conversations (hit@k, facts, abstention)
	$(PY) -m app.eval starter $(ARGS)
	$(PY) -m app.eval conversations $(ARGS)

DATASET ?= ../shared/data/beir/scifact
eval-beir: $(STAMP)  ## retrieval quality on a BEIR dataset: DATASET=path (default: SciFact); ARGS=--json
	$(PY) -m app.eval beir $(DATASET) $(ARGS)

test: $(DEV) system-deps  ## run the whole test suite (unit + slow integration tests)
	$(PY) -m pytest $(ARGS)

test-fast: $(DEV)  ## run the fast tests only
	$(PY) -m pytest -m "not slow" $(ARGS)

fuzz: $(DEV)  ## schemathesis against the running service (with and without a key); ARGS=--examples N
	$(PY) -m tests.fuzz $(ARGS)

bench-ingest: $(DEV)  ## ingest throughput: pipeline vs raw model.encode, and an unchanged re-run
	$(PY) -m tests.bench.bench_ingest $(ARGS)
	$(PY) -m tests.bench.bench_formats
	$(PY) -m tests.bench.bench_peer --part ingest

bench-ask: $(DEV)  ## /ask latency percentiles at 1 and 8 clients, starter corpus and 100k chunks (1M: ARGS="--chunks 1000000 --store sqlite --no-starter")
	$(PY) -m tests.bench.bench_ask $(ARGS)
	$(PY) -m tests.bench.bench_peer --part ask

bench-formats: $(DEV)  ## load+chunk MB/s and chunks/s per document format, beside the embedder's rate (ARGS="--ocr 5": OCR pages/s)
	$(PY) -m tests.bench.bench_formats $(ARGS)

bench-ann: $(DEV)  ## FAISS exact vs HNSW: recall@10, ms per search, build time at 100k and 1M (~10 min; not in `make bench`)
	$(PY) -m tests.bench.bench_ann $(ARGS)

bench-extractive: $(DEV)  ## ms the extractive generator's sentence embedding adds per answer
	$(PY) -m tests.bench.bench_extractive $(ARGS)

bench-freshness: $(DEV)  ## seconds from a file written to /ask citing it: watcher vs make ingest
	$(PY) -m tests.bench.bench_freshness $(ARGS)

bench-middleware: $(DEV)  ## what the request log line, metrics and API-key check add per request
	$(PY) -m tests.bench.bench_middleware $(ARGS)

bench-limits: $(DEV)  ## what hostile clients make the service hold: big bodies, half-sent headers
	$(PY) -m tests.bench.bench_limits $(ARGS)

bench: peer-try bench-ingest bench-ask bench-extractive bench-freshness bench-middleware bench-limits  ## every benchmark, LlamaIndex beside ours (about 45 minutes)

peer-try:  # LlamaIndex for make bench if it can be installed; without it, its rows are skipped
	@$(MAKE) --no-print-directory peer-venv || echo "LlamaIndex could not be installed: make bench skips its rows"

$(PEER)/.installed: tests/bench/peer-requirements.txt
	$(PYTHON) -m venv $(PEER)
	$(PEER)/bin/python -m pip install --upgrade pip
	$(PEER)/bin/python -m pip install torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PEER)/bin/python -m pip install -r tests/bench/peer-requirements.txt
	touch $@

peer-venv: $(PEER)/.installed  ## LlamaIndex 0.14 in its own .venv-peer, for the side-by-side benchmarks

bench-peer: $(DEV) peer-venv  ## ragfirst beside LlamaIndex: whole ingest, query embedding + hybrid top 10 (SciFact)
	$(PY) -m tests.bench.bench_peer $(ARGS)

corpus-pdfs: $(DEV)  ## rebuild the starter corpus' PDFs from scripts/pdf_sources (deterministic)
	$(PY) scripts/build_corpus_pdfs.py

corpus-docs: $(DEV)  ## rebuild the starter corpus' Word, PowerPoint, Excel, CSV and EPUB files (deterministic)
	$(PY) scripts/build_corpus_docs.py

clean:  ## remove the virtual environment and the default index
	rm -rf $(VENV) $(PEER) index
