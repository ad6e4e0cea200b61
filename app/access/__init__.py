"""Access: who a request is (keys.py, middleware.py, credentials.py) and what it may reach
(grant.py: the one decision every route goes through)."""
from app.access.grant import (Forbidden, NoSuchCollection, grant, principal, probed, readable,
                              require)
from app.access.keys import OPEN, KeyRing, Principal, Role
from app.access.middleware import OPEN_PATHS, AccessMiddleware

__all__ = ["AccessMiddleware", "Forbidden", "KeyRing", "NoSuchCollection", "OPEN",
           "OPEN_PATHS", "Principal", "Role", "grant", "principal", "probed", "readable",
           "require"]
