"""System programs some tests drive (chromium, docker-compose, make): skip without them, saying
how to install them (`make test` does it when run as root: scripts/system-deps.sh), but fail
when RAG_TESTS_REQUIRE_SYSTEM=1. CI sets it: there a missing program is a broken build, not a
reason for tests to pass silently."""
from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def require_system(what: str, present: bool, install: str) -> None:
    if present:
        return
    reason = f"{what} is not installed ({install})"
    if os.environ.get("RAG_TESTS_REQUIRE_SYSTEM") == "1":
        pytest.fail(f"{reason}; RAG_TESTS_REQUIRE_SYSTEM=1 forbids skipping", pytrace=False)
    pytest.skip(reason)


@contextmanager
def small_disk(where: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `where` (a disk that can fill up): needs root, as CI runs
    the tests."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        require_system("root (to mount a small tmpfs)", False, "run the tests as root, as CI does")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, text=True)
    require_system(f"mount -t tmpfs ({mounted.stderr.strip()})", mounted.returncode == 0,
                   "a machine that lets root mount a tmpfs")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def require_tesseract() -> None:
    """tesseract (and its English model), which the OCR tests run through pytesseract."""
    require_system("tesseract", shutil.which("tesseract") is not None,
                   "apt-get install tesseract-ocr tesseract-ocr-eng, or scripts/system-deps.sh")
