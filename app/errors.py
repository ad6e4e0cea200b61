"""The service's errors. Each carries the HTTP status it becomes at the edge (and only there)."""
from __future__ import annotations


class AppError(Exception):
    status = 500


class IndexNotReady(AppError):
    status = 503


class GeneratorFailed(AppError):
    """The LLM backend refused, failed or answered with something unusable."""

    status = 502


class GeneratorTimeout(GeneratorFailed):
    """The LLM backend did not answer within the configured timeout."""

    status = 504
