"""What every call to a remote HTTP backend needs, shared by ingest's remote embedder and the
service's OpenAI-compatible generator: one deadline for the whole call, kept by a watchdog that
shuts the socket when it passes and by bodies read chunk by chunk with the deadline checked;
exponential backoff with jitter between attempts; the server's Retry-After; and a connection
error's reason without the address it names."""
from __future__ import annotations

import random
import socket
import threading
import time
from typing import Iterator

import httpx

BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 4.0


class DeadlinePassed(Exception):
    """The call's deadline passed while a response was being read."""


def backoff_s(attempt: int, retry_after: float | None = None) -> float:
    """How long to wait before attempt `attempt + 1` (the first retry is attempt 0's):
    exponential with jitter (x0.5 to x1.5, so clients that failed together do not retry
    together), and at least what the server asked for."""
    delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt) * random.uniform(0.5, 1.5)
    return max(delay, retry_after or 0.0)


def retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the HTTP-date form is ignored)."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def watchdog(response: httpx.Response, deadline: float) -> threading.Timer | None:
    """Shut the response's socket at the deadline: a blocked read then returns at once."""
    network_stream = response.extensions.get("network_stream")
    sock = network_stream.get_extra_info("socket") if network_stream is not None else None
    if not isinstance(sock, socket.socket):
        return None  # e.g. a test transport: the per-chunk deadline checks still apply

    def cut() -> None:
        try:  # on a duplicate descriptor: safe for TLS sockets and for the reading thread
            with socket.fromfd(sock.fileno(), sock.family, sock.type) as dup:
                dup.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    timer = threading.Timer(max(0.0, deadline - time.monotonic()) + 0.01, cut)
    timer.daemon = True
    timer.start()
    return timer


def _chunks(response: httpx.Response, deadline: float) -> Iterator[bytes]:
    for chunk in response.iter_bytes():
        if time.monotonic() >= deadline:
            raise DeadlinePassed
        yield chunk
    if time.monotonic() >= deadline:  # the watchdog's shutdown reads as a clean end of body
        raise DeadlinePassed


def read_body(response: httpx.Response, deadline: float, limit: int | None = None) -> bytes:
    """The body (its first `limit` bytes, if given), or DeadlinePassed."""
    body = bytearray()
    for chunk in _chunks(response, deadline):
        body += chunk
        if limit is not None and len(body) >= limit:
            break
    return bytes(body)


def connection_reason(exc: Exception) -> str:
    """A connection error's reason without the address it names ("[Errno 111] Connection
    refused")."""
    text = str(exc)
    return text.split(": ", 1)[-1] if "Errno" not in text else text[text.index("[Errno"):]
