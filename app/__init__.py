"""The FastAPI service: retrieve-then-generate with verified citations (built on ingest's index)."""
