"""Ingestion: corpus files -> token-aware chunks -> embeddings -> a crash-safe, incremental index."""
