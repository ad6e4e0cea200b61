# ragfirst — every entry point a newcomer needs. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=
# Where pip finds the CPU build of torch. Empty: pip's own configuration (these build machines
# carry the CPU wheel locally). Elsewhere: make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: help install ingest test test-fast bench-ingest corpus-pdfs clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# The CPU build of torch first: PyPI's default build pulls gigabytes of CUDA packages.
	$(PY) -m pip install torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its dev extras

ingest: $(STAMP)  ## (re-)ingest corpus/ into index/ incrementally; ARGS=--rebuild for a full rebuild
	$(PY) -m ingest $(ARGS)

test: $(STAMP)  ## run the whole test suite (unit + slow integration tests)
	$(PY) -m pytest $(ARGS)

test-fast: $(STAMP)  ## run the fast tests only
	$(PY) -m pytest -m "not slow" $(ARGS)

bench-ingest: $(STAMP)  ## ingest throughput: pipeline vs raw model.encode, and an unchanged re-run
	$(PY) -m tests.bench.bench_ingest $(ARGS)

corpus-pdfs: $(STAMP)  ## rebuild the starter corpus' PDFs from scripts/pdf_sources (deterministic)
	$(PY) scripts/build_corpus_pdfs.py

clean:  ## remove the virtual environment and the default index
	rm -rf $(VENV) index
