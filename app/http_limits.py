"""What a client can make the server hold, bounded: the uvicorn configuration the service runs
with (`server_config`), a deadline for a request's headers (uvicorn has none: a client that
sends half a header would hold its connection for ever), and a size and a deadline for its
body (`BodyLimits`)."""
from __future__ import annotations

import asyncio
import json
import logging
import re

import h11
import uvicorn
from starlette.exceptions import HTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.errors import error_body

log = logging.getLogger("ragfirst.http")


class H11WithHeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are not complete
    within `header_timeout` seconds of the connection (or of the previous response): a
    slow-headers client ("slowloris") cannot hold connections open. Our own because uvicorn
    offers a keep-alive timeout, which any byte resets, and nothing for partial headers."""

    header_timeout: float = 10.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.info("closing a connection whose request headers took over %.0f s",
                     self.header_timeout)
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the headers are in
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()  # the next request's headers get the same time

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


class BodyLimits:
    """ASGI middleware for a request's body: at most `max_bytes` (413, before reading it when
    its length is announced, or as soon as a chunked body passes it), and all of it within
    `timeout` seconds of the request's start (408), so a client trickling a body cannot hold a
    worker. Either refusal closes the connection. Once the body is in, waiting for a
    disconnect (during a stream) is not limited. An upload (POST /collections/{name}/documents)
    has its own, larger limits: `upload_bytes` within `upload_timeout`.

    Our own rather than Starlette's RequestBodyLimitMiddleware (or FastAPI's max_body_size,
    built on it): that one answers 413 in plain text and replaces any other response, while
    ours must be in the error shape of the path (OpenAI's under /v1)."""

    def __init__(self, app, max_bytes: int, timeout: float, upload_bytes: int | None = None,
                 upload_timeout: float | None = None) -> None:
        self.app = app
        self.limits = (max_bytes, timeout, TOO_LARGE)
        self.upload_limits = (upload_bytes or max_bytes, upload_timeout or timeout,
                              UPLOAD_TOO_LARGE)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        is_upload = scope["method"] == "POST" and UPLOAD_PATH.match(scope["path"])
        max_bytes, timeout, too_large = self.upload_limits if is_upload else self.limits
        announced = _content_length(scope)
        if announced is not None and announced > max_bytes:
            return await _refuse(scope, send, 413, too_large)
        received, done = 0, False
        deadline = asyncio.get_running_loop().time() + timeout

        async def guarded_receive():
            nonlocal received, done
            if done:
                return await receive()
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.001))
            except TimeoutError:  # answered by the app's handler, in the path's error shape
                raise HTTPException(408, "the request body did not arrive in time",
                                    headers=CLOSE) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise HTTPException(413, too_large, headers=CLOSE)
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        await self.app(scope, guarded_receive, send)


CLOSE = {"connection": "close"}  # the rest of the body is not read: the connection ends
TOO_LARGE = ("the request body is over the limit (RAG_MAX_REQUEST_BYTES); a question is at "
             "most 2,000 characters")
UPLOAD_TOO_LARGE = ("the upload is over the limit (RAG_MAX_UPLOAD_BYTES): send fewer or "
                    "smaller files per request")
UPLOAD_PATH = re.compile(r"^/collections/[^/]+/documents/?$")


def _content_length(scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(scope, send, status: int, message: str) -> None:
    raw = json.dumps(error_body(scope["path"], status, message)).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": raw})


def server_config(app, settings) -> uvicorn.Config:
    """uvicorn as the service runs it: our log lines, the limits in settings (RAG_HTTP_*)."""
    protocol = type("H11", (H11WithHeaderDeadline,),
                    {"header_timeout": settings.http_header_timeout_s})
    return uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None,
                          access_log=False, http=protocol,
                          timeout_keep_alive=settings.http_keep_alive_s,
                          limit_concurrency=settings.http_limit_concurrency,
                          h11_max_incomplete_event_size=settings.http_max_header_bytes)
