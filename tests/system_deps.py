"""System programs some tests drive (chromium, docker-compose, make): skip without them, saying
how to install them (`make test` does it when run as root: scripts/system-deps.sh), but fail
when RAG_TESTS_REQUIRE_SYSTEM=1. CI sets it: there a missing program is a broken build, not a
reason for tests to pass silently."""
from __future__ import annotations

import os

import pytest


def require_system(what: str, present: bool, install: str) -> None:
    if present:
        return
    reason = f"{what} is not installed ({install})"
    if os.environ.get("RAG_TESTS_REQUIRE_SYSTEM") == "1":
        pytest.fail(f"{reason}; RAG_TESTS_REQUIRE_SYSTEM=1 forbids skipping", pytrace=False)
    pytest.skip(reason)
