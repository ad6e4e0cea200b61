"""One router per resource: ask (/ask), documents (/ingest, /documents), health (/healthz,
/readyz, /metrics), openai (/v1) and web (the page at /)."""
