"""SidePool: work on threads beside the caller's, in a forked child too."""
from __future__ import annotations

import os
import threading

import pytest

from ingest.side_pool import SidePool


def test_work_runs_on_a_pool_thread_and_errors_come_back():
    pool = SidePool(2, "side-test")
    assert pool.submit(lambda: threading.current_thread().name).result().startswith("side-test")

    def fails():
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        pool.submit(fails).result()


def test_a_forked_child_gets_threads_of_its_own():
    pool = SidePool(1, "side-fork")
    assert pool.submit(lambda: 1).result() == 1  # the parent's thread exists
    pid = os.fork()
    if pid == 0:  # the child: the parent's pool thread is not here
        os._exit(0 if pool.submit(lambda: 2).result(timeout=10) == 2 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
