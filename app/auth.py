"""The optional API key (RAG_API_KEY). When it is set, every request but the health and
readiness probes must carry it, in any of the forms clients already know how to send:

- `Authorization: Bearer KEY`: OpenAI clients (`api_key=KEY`), curl, Prometheus;
- `X-API-Key: KEY`;
- HTTP Basic with KEY as the password (any user name): a browser asks for it when it opens the
  web page, then sends it with every call the page makes.

The comparison takes the same time wherever the presented key first differs."""
from __future__ import annotations

import base64
import binascii
import hmac
import json

from app.errors import error_body

OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def presented_keys(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """Every key a request carries (a proxy may add an X-API-Key beside a client's Bearer).
    `headers`: (lower-case name, value) pairs, as ASGI gives them."""
    keys = []
    for name, value in headers:
        if name == b"x-api-key":
            keys.append(value.strip())
        elif name == b"authorization":
            scheme, _, credentials = value.strip().partition(b" ")
            if scheme.lower() == b"bearer":
                keys.append(credentials.strip())
            elif scheme.lower() == b"basic":
                try:
                    user_pass = base64.b64decode(credentials.strip(), validate=True)
                except (binascii.Error, ValueError):
                    continue
                keys.append(user_pass.partition(b":")[2])
    return keys


def key_matches(presented: list[bytes], key: bytes) -> bool:
    # compare_digest: no early exit at the first differing byte (a timing side channel).
    # Every candidate is compared, so the time does not tell which one matched either.
    matches = [hmac.compare_digest(candidate, key) for candidate in presented]
    return any(matches)


class ApiKeyMiddleware:
    """Refuses requests without the key with 401 (OpenAI's error shape under /v1)."""

    def __init__(self, app, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan" or (scope["type"] == "http"
                                            and scope["path"] in OPEN_PATHS):
            return await self.app(scope, receive, send)
        if key_matches(presented_keys(scope["headers"]), self.key):
            return await self.app(scope, receive, send)
        if scope["type"] != "http":  # a websocket (none is served today): refused unopened
            return await send({"type": "websocket.close", "code": 1008})
        message = ("a valid API key is required: send `Authorization: Bearer <RAG_API_KEY>` "
                   "or `X-API-Key: <RAG_API_KEY>` (a browser: the key as the Basic password)")
        raw = json.dumps(error_body(scope["path"], 401, message, "invalid_api_key")).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            # Basic makes a browser ask for the key (as the password) on the web page.
            (b"www-authenticate", b'Basic realm="ragfirst", charset="UTF-8"'),
            (b"www-authenticate", b'Bearer realm="ragfirst"'),
        ]})
        await send({"type": "http.response.body", "body": raw})
