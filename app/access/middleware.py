"""Who is asking, for every request: the key check in front of every route (the page, its
files, /docs and paths no route serves included). A request without a known key is refused
with 401 (OpenAI's error shape under /v1); one with a known key carries its Principal in
`request.state.principal`, for app.access.grant to decide what it may reach. Only the health
and readiness probes need no key."""
from __future__ import annotations

import json

from app.access.credentials import presented_keys
from app.access.keys import OPEN, KeyRing
from app.errors import error_body
from app.telemetry import scope_info

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
_MESSAGE = ("a valid API key is required: send `Authorization: Bearer <key>` or "
            "`X-API-Key: <key>` (a browser: the key as the Basic password)")


class AccessMiddleware:
    def __init__(self, app, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        if not self.keys.required:
            principal = OPEN
        elif scope["type"] == "http" and scope["path"] in OPEN_PATHS:
            principal = None  # the probes reach no collection
        else:
            principal = self.keys.identify(presented_keys(scope["headers"]))
            if principal is None:
                return await _refuse(scope, send)
            scope_info(scope)["key"] = principal.name  # the key's name, never the key
        scope.setdefault("state", {})["principal"] = principal
        return await self.app(scope, receive, send)


async def _refuse(scope, send) -> None:
    if scope["type"] != "http":  # a websocket (none is served today): refused unopened
        return await send({"type": "websocket.close", "code": 1008})
    raw = json.dumps(error_body(scope["path"], 401, _MESSAGE, "invalid_api_key")).encode()
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(raw)).encode()),
        # Basic makes a browser ask for the key (as the password) on the web page.
        (b"www-authenticate", b'Basic realm="ragfirst", charset="UTF-8"'),
        (b"www-authenticate", b'Bearer realm="ragfirst"'),
    ]})
    await send({"type": "http.response.body", "body": raw})
