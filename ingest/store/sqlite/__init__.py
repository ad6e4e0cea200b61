"""The embedded store: one SQLite database as the source of truth (documents, chunks, vectors,
an FTS5 table for BM25) and a FAISS file derived from it per commit."""
