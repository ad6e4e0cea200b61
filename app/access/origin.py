"""What a browser could be made to send: requests to a Host we do not answer to, and requests
that change something coming from another site. Not keys: a browser attaches the page's
saved Basic credentials (or, in open mode, none are needed) to whatever another site makes it
send, so a key alone cannot tell the user's own request from a forged one.

- Host: with RAG_ALLOWED_HOSTS unset, a service listening on a loopback address (the default,
  127.0.0.1) answers to loopback names only (localhost, 127.0.0.1, [::1]): a site whose DNS
  name is made to point at 127.0.0.1 (DNS rebinding) gets 400. A service listening elsewhere
  answers to any Host unless RAG_ALLOWED_HOSTS lists them.
- Cross-site writes: a POST, PUT, PATCH or DELETE whose `Sec-Fetch-Site` is neither
  same-origin nor none (every current browser sends it), or whose `Origin` is not the Host it
  was sent to, is refused with 403. Clients that are not browsers (curl, the OpenAI SDK, the
  `ragfirst` command) send neither header and are not affected; no page of another origin
  could read our answers anyway (the service sends no CORS headers).
Our own code because Starlette's TrustedHostMiddleware answers in its own error shape and has
no origin check, and both belong with the rest of access, in front of every route.
"""
from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_SITE = frozenset({b"same-origin", b"none"})


def allowed_hosts(setting: str | None, listen_host: str) -> frozenset[str] | None:
    """The Host names to answer to (None: any): RAG_ALLOWED_HOSTS (comma-separated, `*` for
    any) or, unset, loopback names for a service listening on loopback."""
    if setting is None or not setting.strip():
        return LOOPBACK_HOSTS if listen_host in LOOPBACK_HOSTS else None
    names = {host_name(n) for n in setting.split(",") if n.strip()}
    return None if "*" in names else frozenset(names)


def host_name(host: str) -> str:
    """The name of a Host header's value: without its port, an IPv6 address without [ ]."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class OriginPolicy:
    """`allowed`: the Host names the service answers to (None: any)."""

    def __init__(self, allowed: frozenset[str] | None) -> None:
        self.allowed = allowed

    def refusal(self, scope) -> tuple[int, str] | None:
        """(status, message) for a request to refuse, None for one to let through."""
        if scope["type"] not in ("http", "websocket"):
            return None
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        if self.allowed is not None and host_name(host) not in self.allowed:
            return 400, ("this service does not answer to the host name in the request; "
                         "add it to RAG_ALLOWED_HOSTS")
        if scope.get("method", "GET") in _SAFE_METHODS:
            return None
        site = headers.get(b"sec-fetch-site")
        origin = headers.get(b"origin")
        cross_site = site is not None and site.strip().lower() not in _SAME_SITE
        foreign = origin is not None and (urlsplit(origin.decode("latin-1")).netloc.lower()
                                          != host.strip().lower())
        if cross_site or foreign:
            return 403, "a request that changes something must come from this service's own page"
        return None
