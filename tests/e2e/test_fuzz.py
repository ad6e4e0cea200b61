"""`make fuzz`, bounded, in the test suite: schemathesis against the real service with and
without a key finds nothing (no 500, nothing undocumented, no schema drift)."""
from __future__ import annotations

import pytest

from tests import fuzz

pytestmark = pytest.mark.slow


def test_schemathesis_finds_nothing():
    assert fuzz.run(examples=25) == 0
