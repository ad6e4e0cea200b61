"""The scale-out store: PostgreSQL with pgvector. Documents, chunks, their vectors (an HNSW index
for dense search) and BM25 term statistics (for lexical search) in one schema, every ingest run
one transaction; any number of API processes read it, each request one repeatable-read
transaction."""
