"""The one place that decides what a request may reach. Every route that touches a collection
gets it from `grant(request, needed, name)` (there is no other way to a collection's index
or folder), every route that lists them from `readable(request)`, and the admin-only routes
call `require(request, Role.ADMIN)`; the probes that report on every collection without
naming it (/readyz, /metrics) read them through `probed(request)`.

The rule, decided once:
- no valid key: 401 (app.access.middleware, before any route);
- a collection the key cannot read: 404 "no collection named ...", exactly as for a name that
  does not exist, so a key cannot learn which other collections exist;
- a collection the key can read but an action its role does not allow (a read key uploading,
  deleting, ingesting): 403, since the collection's existence is no secret to it;
- /metrics (every collection's figures) without the admin role: 403.
"""
from __future__ import annotations

from fastapi import Request

from app.access.keys import Principal, Role
from app.collections import Collection, Collections
from app.errors import AppError
from app.telemetry import request_info


class NoSuchCollection(AppError):
    status = 404


class Forbidden(AppError):
    status = 403


def principal(request: Request) -> Principal:
    """The request's principal, set by the middleware. A request that reached a route without
    one (the middleware missing: a wiring bug) may do nothing."""
    found = request.scope.get("state", {}).get("principal")
    if not isinstance(found, Principal):
        raise Forbidden("this request carries no identity; nothing can be reached")
    return found


def _collections(request: Request) -> Collections:
    return request.app.state.collections


def grant(request: Request, needed: Role, name: str) -> Collection:
    """The collection `name` for a request that may do `needed` on it; NoSuchCollection or
    Forbidden otherwise (see the module's doc)."""
    who = principal(request)
    found = _collections(request).get(name) if who.reads(name) else None
    if found is None:
        raise NoSuchCollection(f"no collection named {name!r} (GET /collections lists the "
                               "ones this key can read)")
    if not who.role.allows(needed):
        raise Forbidden(f"the key {who.name!r} may only {who.role.value} collection {name!r}; "
                        f"this needs the {needed.value} role")
    request.state.collection = found  # for error messages about its ingests (app.api.errors)
    request_info(request)["collection"] = name
    return found


def readable(request: Request) -> list[Collection]:
    """The collections the request's key can read, in their file's order."""
    who = principal(request)
    return [c for c in _collections(request) if who.reads(c.name)]


def probed(request: Request) -> Collections:
    """Every collection, for what reports on all of them without a key or to the admin only:
    /readyz (counts, no names, no text) and /metrics (`require(request, Role.ADMIN)` first).
    Nothing that answers questions or lists documents may take its collection from here."""
    return _collections(request)


def require(request: Request, needed: Role) -> Principal:
    """A request whose key has the role `needed` (for what spans every collection)."""
    who = principal(request)
    if not who.role.allows(needed):
        raise Forbidden(f"the key {who.name!r} ({who.role.value}) may not do this: it needs "
                        f"the {needed.value} role")
    return who
