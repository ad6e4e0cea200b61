"""The starter corpus' Office, spreadsheet and EPUB documents are what their builders write."""
from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT


def test_committed_documents_equal_a_fresh_build():
    out = subprocess.run([sys.executable, "scripts/build_corpus_docs.py", "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
