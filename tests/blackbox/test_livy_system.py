"""Livy sessions under isolation: system (each kernel runs as its owner's
Unix account, like flow tasks and hub servers) and session ids that are
never handed out twice (docs/livy.md)."""
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import wait_for
from hubserve import HubServer, hub_harness

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="isolation: system needs root")


# ---- ids -------------------------------------------------------------------------------------

def test_session_ids_are_never_reused(tmp_path_factory):
    """A deleted session's id used to go to the next session (SQLite's
    max(rowid)+1), so a late event of the old kernel could reach the new
    session.  Ids only grow, across deletes, the retain pruning and restarts.
    The kernel spec does not exist: each session ends in error at once, which
    is all an id needs."""
    h = hub_harness(tmp_path_factory, "livyids")
    hs = HubServer(h, config="livy:\n  kernel: nbhub-no-such-kernel\n").start()
    try:
        a = hs.apis["alice"]
        ids = []
        for _ in range(2):
            st, s = a.post("/livy/sessions", {"kind": "pyspark"})
            assert st == 201, (st, s)
            ids.append(s["id"])
            st, body = a.delete(f"/livy/sessions/{s['id']}")
            assert st == 200, (st, body)
        assert ids == [1, 2], ids
        hs.restart()
        st, s = a.post("/livy/sessions", {"kind": "pyspark"})
        assert st == 201 and s["id"] == 3, (st, s)
        # the table alone would say 3 now; the mark says so even with no row
        a.delete("/livy/sessions/3")
        hs.restart(kill9=True)
        st, s = a.post("/livy/sessions", {"kind": "pyspark"})
        assert st == 201 and s["id"] == 4, (st, s)
        a.delete("/livy/sessions/4")
    finally:
        hs.stop()
        h.cleanup()
