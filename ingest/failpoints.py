"""Named kill points for crash-safety tests (the technique FreeBSD and etcd call "fail points").

When the environment variable RAG_FAILPOINT names a point, the process SIGKILLs itself there:
no cleanup, no flush, exactly like a power cut of the process. Unset, `hit` costs one dict
lookup. Points: after-scan (the corpus listed, no file read yet), mid-embed, before-commit, after-commit, mid-dense-write; a copy
between stores (ingest/copy.py): mid-copy, before-commit.
"""
from __future__ import annotations

import os
import signal


def hit(name: str) -> None:
    if os.environ.get("RAG_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
