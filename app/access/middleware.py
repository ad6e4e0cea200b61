"""Who is asking, for every request: the key check in front of every route (the page, its
files, /docs and paths no route serves included). A request without a known key is refused
with 401 (OpenAI's error shape under /v1); one with a known key carries its Principal in
`request.state.principal`, for app.access.grant to decide what it may reach. Only the health
and readiness probes need no key.

Before the key, two checks a browser needs (app/access/origin.py): a Host the service answers
to (DNS rebinding), and no request that changes something from another site (cross-site
request forgery: a browser would send the page's Basic credentials, or none in open mode,
with a form another site posts)."""
from __future__ import annotations

import json

from app.access.credentials import presented_keys
from app.access.keys import OPEN, KeyRing
from app.access.origin import OriginPolicy
from app.errors import error_body
from app.telemetry import scope_info

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
_MESSAGE = ("a valid API key is required: send `Authorization: Bearer <key>` or "
            "`X-API-Key: <key>` (a browser: the key as the Basic password)")


class AccessMiddleware:
    def __init__(self, app, keys: KeyRing, origins: OriginPolicy | None = None) -> None:
        self.app = app
        self.keys = keys
        self.origins = origins or OriginPolicy(None)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        refused = self.origins.refusal(scope)
        if refused is not None:
            return await _refuse(scope, send, *refused)
        if not self.keys.required:
            principal = OPEN
        elif scope["type"] == "http" and scope["path"] in OPEN_PATHS:
            principal = None  # the probes reach no collection
        else:
            principal = self.keys.identify(presented_keys(scope["headers"]))
            if principal is None:
                return await _refuse(scope, send, 401, _MESSAGE)
            scope_info(scope)["key"] = principal.name  # the key's name, never the key
        scope.setdefault("state", {})["principal"] = principal
        return await self.app(scope, receive, send)


async def _refuse(scope, send, status: int, message: str) -> None:
    if scope["type"] != "http":  # a websocket (none is served today): refused unopened
        return await send({"type": "websocket.close", "code": 1008})
    code = "invalid_api_key" if status == 401 else None
    raw = json.dumps(error_body(scope["path"], status, message, code)).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(raw)).encode())]
    if status == 401:  # Basic makes a browser ask for the key (the password) on the page
        headers += [(b"www-authenticate", b'Basic realm="ragfirst", charset="UTF-8"'),
                    (b"www-authenticate", b'Bearer realm="ragfirst"')]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})
