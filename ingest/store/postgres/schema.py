"""The tables of an index on PostgreSQL, in its own schema (RAG_DATABASE_SCHEMA).

- `meta`: model id, chunking parameters, vector dimension, generation, `commit` (a random id per
  content change), `revision` (a random id per change readers can see, the refused files
  included), `index_id`, and the counts readers need without counting (documents, chunks, the
  chunks' total length in terms for BM25).
- `documents`, `chunks` (with the chunk's vector, copied from `vectors` at commit, so a search
  finds chunks, not shared vectors), `vectors` (checkpointed embeddings keyed by model + text
  hash: a killed run's work is reused, identical text embedded once).
- `postings` and `term_stats`: BM25's statistics (see lexical.py).
- `failures`: files the last run refused.
- The HNSW index over the chunks' vectors, as halfvec (half the memory of float32; scores are
  recomputed from the full vectors), made for the dimension at the first commit (dense.py).
"""
from __future__ import annotations

SCHEMA_VERSION = 1

DDL = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.documents (
    id bigserial PRIMARY KEY, path text NOT NULL UNIQUE, sha256 text NOT NULL,
    size bigint NOT NULL, kind text NOT NULL, text text NOT NULL,
    ingested_at double precision NOT NULL, generation bigint NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.chunks (
    id bigserial PRIMARY KEY,
    doc_id bigint NOT NULL REFERENCES {s}.documents(id) ON DELETE CASCADE,
    ordinal integer NOT NULL, start integer NOT NULL, "end" integer NOT NULL,
    heading text NOT NULL, page integer, tokens integer NOT NULL, text text NOT NULL,
    vec_key text NOT NULL, length integer NOT NULL, embedding vector NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON {s}.chunks (doc_id);
CREATE INDEX IF NOT EXISTS chunks_vec ON {s}.chunks (vec_key);
CREATE TABLE IF NOT EXISTS {s}.vectors (key text PRIMARY KEY, embedding vector NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.postings (
    term text NOT NULL, chunk_id bigint NOT NULL REFERENCES {s}.chunks(id) ON DELETE CASCADE,
    tf integer NOT NULL, length integer NOT NULL);
CREATE INDEX IF NOT EXISTS postings_term ON {s}.postings (term) INCLUDE (chunk_id, tf, length);
CREATE INDEX IF NOT EXISTS postings_chunk ON {s}.postings (chunk_id);
CREATE TABLE IF NOT EXISTS {s}.term_stats (term text PRIMARY KEY, df integer NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.failures (path text PRIMARY KEY, reason text NOT NULL, size bigint);
"""

TABLES = ("meta", "documents", "chunks", "vectors", "postings", "term_stats", "failures")

DOCUMENTS_SQL = ("SELECT d.path, d.sha256, d.size, d.kind, COUNT(c.id), d.ingested_at "
                 "FROM {s}.documents d LEFT JOIN {s}.chunks c ON c.doc_id = d.id "
                 "GROUP BY d.id ORDER BY d.path")

HNSW_INDEX = "chunks_hnsw"


def hnsw_expr(dim: int, column: str = "embedding") -> str:
    """The expression the HNSW index is built on; a search must order by the same one."""
    return f"({column}::halfvec({int(dim)}))"
