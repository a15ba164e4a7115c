"""Built-in idle culling (issue 17, docs/hub.md "Idle culling"), with real
jupyterhub-singleuser servers behind nbhub's proxy: with cull.timeout 5 s
checked every second, an idle server is stopped (and says why), a server
whose kernel runs `time.sleep(...)` is spared while the kernel is busy
(keep_busy) and culled once it is idle, and cull.max_age stops even a busy
server."""

import re
import time

import pytest

from conftest import wait_for
from nbserve import Server
from hubkernel import KernelWs, add_user, server_json, start_server, wait_state

pytest.importorskip("websocket")


def hub_yaml(h, cull):
    py = str(h.env["VIRTUAL_ENV"]) + "/bin/python"
    return ("hub:\n"
            "  profiles:\n"
            "    - name: lab\n"
            f"      python: {py}\n"
            "  start_timeout: 90s\n"
            f"  cull: {cull}\n")


def culled_lines(srv):
    text = srv.log_path.read_text(errors="replace")      # all of it: srv.log() is the tail
    return [l for l in text.splitlines() if "server culled" in l]


def test_idle_culled_busy_spared_then_culled_and_max_age(h):
    srv = Server(h, args=["--stop-servers-on-exit"])
    (srv.home / "nbhub.yaml").write_text(hub_yaml(h, "{timeout: 5s, every: 1s, keep_busy: true}"))
    srv.start()
    try:
        alice, bob = add_user(srv, "alice"), add_user(srv, "bob")
        start_server(alice, profile="lab")
        start_server(bob, profile="lab")
        wait_state(alice, "alice", "", "running", timeout=120, srv=srv)
        wait_state(bob, "bob", "", "running", timeout=120, srv=srv)

        # bob's kernel is busy for 20 s; alice does nothing.
        k = KernelWs(srv.port, bob.token, "/user/bob/")
        try:
            assert "ready" in k.execute("print('ready')", timeout=60)
            t_busy = time.monotonic()
            k.send_execute("import time; time.sleep(20); print('slept')")

            # alice's idle server is culled: 5 s + at most a round, with slack
            s = wait_state(alice, "alice", "", "stopped", timeout=30, srv=srv)
            lines = culled_lines(srv)
            assert any("user=alice" in l and "idle for" in l for l in lines), lines
            # why stays on the server: its stop_reason (the API, the page)
            assert s["stop_reason"].startswith("culled: idle for "), s
            assert "(cull.timeout 5 s)" in s["stop_reason"], s

            # bob's is idle by every timestamp (the sleep sends nothing) but busy
            while time.monotonic() - t_busy < 15:
                assert server_json(bob, "bob", "")["state"] == "running", srv.log()
                time.sleep(1)
            assert not any("user=bob" in l for l in culled_lines(srv)), culled_lines(srv)

            # once the cell is done and 5 s have passed, it goes
            wait_state(bob, "bob", "", "stopped", timeout=40, srv=srv)
            assert time.monotonic() - t_busy >= 20
            assert any("user=bob" in l and "idle for" in l for l in culled_lines(srv)), culled_lines(srv)
        finally:
            k.ws.close()

    finally:
        srv.stop()


def test_max_age_culls_a_busy_server(h):
    srv = Server(h, args=["--stop-servers-on-exit"])
    (srv.home / "nbhub.yaml").write_text(hub_yaml(h, "{timeout: 5s, every: 1s, keep_busy: true, max_age: 25s}"))
    srv.start()
    try:
        bob = add_user(srv, "bob")
        t0 = time.monotonic()
        start_server(bob, profile="lab")
        wait_state(bob, "bob", "", "running", timeout=120, srv=srv)
        k = KernelWs(srv.port, bob.token, "/user/bob/")
        try:
            assert "ready" in k.execute("print('ready')", timeout=60)
            k.send_execute("import time; time.sleep(300)")
            t_busy = time.monotonic()
            # busy: spared past the idle timeout
            while time.monotonic() - t_busy < 8 and time.monotonic() - t0 < 20:
                assert server_json(bob, "bob", "")["state"] == "running", srv.log()
                time.sleep(1)
            s = wait_state(bob, "bob", "", "stopped", timeout=40, srv=srv)
            assert time.monotonic() - t0 >= 25
            lines = [l for l in culled_lines(srv) if "user=bob" in l]
            assert lines and "cull.max_age 25 s" in lines[0], lines
            assert s["stop_reason"].startswith("culled: running for ") and "cull.max_age 25 s" in s["stop_reason"], s
        finally:
            k.ws.close()
    finally:
        srv.stop()
