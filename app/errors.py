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
_OPENAI_CODES = {500: "internal_error", 502: "upstream_error", 503: "index_not_ready",
                 504: "upstream_timeout"}


def error_body(path: str, status: int, message: str, code: str | None = None,
               param: str | None = None) -> dict:
    """An error response's body: OpenAI's shape under /v1 (its clients read that), FastAPI's
    `{"detail": ...}` everywhere else."""
    if not path.startswith("/v1/"):
        return {"detail": message}
    return {"error": {"message": message,
                      "type": "server_error" if status >= 500 else "invalid_request_error",
                      "param": param, "code": code or _OPENAI_CODES.get(status)}}
