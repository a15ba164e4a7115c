"""The hub (docs/hub.md): users' notebook servers started by nbhub serve, running
the real jupyterhub-singleuser + JupyterLab from PyPI, reached through nbhub's
proxy at /user/NAME[/SERVER]/, and adopted again when nbhub serve restarts."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import wait_for
from hubserve import HubServer, descendants, hub_harness, pid_alive

SINGLEUSER = os.path.join(os.path.dirname(__file__), "..", "..", ".venv", "bin", "jupyterhub-singleuser")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """One nbhub serve with a hub for the tests that only start and stop servers."""
    h = hub_harness(tmp_path_factory)
    venv_python = os.path.realpath(os.path.join(os.path.dirname(SINGLEUSER), "python"))
    cfg = ("hub:\n"
           "  max_servers_per_user: 2\n"
           "  start_timeout: 60s\n"
           "  profiles:\n"
           "    - {name: default, description: JupyterLab}\n"
           f"    - {{name: venv, python: {venv_python}, default_url: /lab, env: {{HUB_TEST_VAR: hello}}}}\n"
           "    - {name: crash, python: /bin/sh-not-python}\n"
           "    - {name: alice-only, allow: {users: [alice]}}\n")
    hs = HubServer(h, config=cfg).start()
    yield hs
    hs.stop()
    left = h.cleanup()
    assert not left, left


def test_default_server_starts_and_is_reached_through_the_proxy(hub):
    t0 = time.monotonic()
    srv = hub.start_server("alice")
    assert srv["state"] == "running", srv
    print(f"start to ready: {time.monotonic() - t0:.2f} s")
    assert srv["url"] == "/user/alice/" and srv["pid"] > 0 and srv["owner"] == "alice"
    assert srv["memory"] > 10 * 1024 * 1024
    alice = hub.user("alice")
    st, body = alice.get("/user/alice/api/status")
    assert st == 200, (st, body, hub.log())
    assert "kernels" in body
    # /user/alice without its slash: redirected
    st, _, hdr = alice.request("GET", "/user/alice", raw=True)
    assert st == 302 and hdr["location"] == "/user/alice/"
