"""Fixtures of the end-to-end tests (the session-wide ones, such as the starter service, are in
tests/conftest.py)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def starter(starter_index, starter_service):
    """(base URL, corpus folder) of the shared starter service (a module that only asks)."""
    settings, _ = starter_index
    return starter_service, settings.corpus_dir


# Fixtures that live in their own modules, shared by several test files.
from tests.web_page import browser  # noqa: E402,F401
