"""The service's errors. Each carries the HTTP status it becomes at the edge (and only there)."""
from __future__ import annotations


class AppError(Exception):
    status = 500


class IndexNotReady(AppError):
    status = 503


class GeneratorFailed(AppError):
    """The LLM backend refused, failed or answered with something unusable. The service sets
    `sources` (app.answer.Citation objects): what was retrieved, for the error body."""

    status = 502
    sources: list | None = None


class GeneratorTimeout(GeneratorFailed):
    """The LLM backend did not answer within the configured timeout."""

    status = 504


# OpenAI's error `code` is a string: our statuses by name.
_OPENAI_CODES = {404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
                 413: "request_too_large", 500: "internal_error", 502: "upstream_error",
                 503: "index_not_ready", 504: "upstream_timeout"}


def error_body(path: str, status: int, message: str, code: str | None = None,
               param: str | None = None) -> dict:
    """An error response's body: OpenAI's shape under /v1 (its clients read that), FastAPI's
    `{"detail": ...}` everywhere else."""
    if not (path.startswith("/v1/") or path == "/v1"):
        return {"detail": message}
    return {"error": {"message": message,
                      "type": "server_error" if status >= 500 else "invalid_request_error",
                      "param": param, "code": code or _OPENAI_CODES.get(status)}}


class Redactor:
    """Takes the service's own locations out of what it tells clients: a folder's absolute
    path becomes its last name (`/srv/ragfirst/index` becomes `index`), the LLM backend's
    address "the LLM backend", the remote embedder's "the embedding server". Health and error
    bodies say what state the service is in, never where its files are; the log keeps the full
    text."""

    def __init__(self, places: dict[str, str]) -> None:
        # longest first, so a folder inside another is replaced as itself
        self._places = sorted(((k, v) for k, v in places.items() if k and len(k) > 1),
                              key=lambda kv: -len(kv[0]))

    @classmethod
    def for_service(cls, corpus_dirs, index_dirs, llm_url: str | None = None,
                    embed_url: str | None = None) -> "Redactor":
        """`corpus_dirs`, `index_dirs`: every collection's folders."""
        places: dict[str, str] = {}
        for folder in (*index_dirs, *corpus_dirs):
            name = f"`{folder.resolve().name}`"
            places[str(folder.resolve())] = name
            if folder.is_absolute():
                places[str(folder)] = name
        if llm_url:
            places[llm_url.rstrip("/")] = "the LLM backend"
        if embed_url:  # the remote embedder's messages open with "embedding server URL:"
            places[f"embedding server {embed_url}"] = "the embedding server"
        return cls(places)

    def __call__(self, text: str) -> str:
        for place, name in self._places:
            text = text.replace(place, name)
        return text
