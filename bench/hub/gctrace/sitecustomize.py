"""Loaded by every Python started with this folder on PYTHONPATH (bench_singleuser_tail.py
--gc-trace puts it there for the servers it measures): records the cyclic garbage
collector's pauses of the process, so a latency tail can be matched against them.

With BENCH_GCTRACE_DIR set, each collection of generation 1 or 2 appends one line to
BENCH_GCTRACE_DIR/gc-PID.log:

    MONOTONIC_END GEN PAUSE_MS COLLECTED GEN0_COUNT GEN0_MS_TOTAL

(CLOCK_MONOTONIC, the clock time.monotonic() of the benchmark reads, so a pause can be
placed inside a wrk run; the generation-0 collections are only counted, with their time
summed, not written one by one: they come by the thousand).  A write(2) per line, no
buffer: the process may be killed at any time.

BENCH_GC_FREEZE_AFTER=S calls gc.freeze() once, S seconds after start (from a timer
thread; the GIL makes it atomic): everything alive then (the imported modules, the
server's and JupyterLab's objects) is moved to the permanent generation, which the
collector no longer traverses.  The experiment that tells whether the full collections'
length is the heap the server had at start.

BENCH_GC_GARBAGE=1: what the collector finds, by type: a timer thread looks every 0.5 s
for BENCH_GCTRACE_DIR/garbage-start (then gc.DEBUG_SAVEALL: unreachable objects are kept
in gc.garbage instead of freed) and garbage-stop (then one gc.collect(), and
garbage-PID.json: the count of each type, functions by qualified name, and the count of
kept objects; then gc.garbage is emptied and the flag cleared).

BENCH_BREAK_LOGIN_URL_CYCLE=S: S seconds after start, replaces
jupyterhub.singleuser.extension.JupyterHubIdentityProvider._patch_get_login_url by a
wrapper that calls it and then points the closure it leaves on the handler
(handler.get_login_url, whose cells hold the handler and a method bound to it: a
reference cycle per request) at weak proxies of the handler instead: the experiment
that tells whether that cycle is what feeds the collector.

Nothing happens without BENCH_GCTRACE_DIR (the hub process itself may inherit the
variable's absence)."""
import gc
import os
import time

_dir = os.environ.get("BENCH_GCTRACE_DIR")
if _dir:
    _fd = None
    _state = {"t0": 0.0, "n0": 0, "ms0": 0.0}

    def _cb(phase, info):
        global _fd
        if phase == "start":
            _state["t0"] = time.perf_counter()
            return
        ms = (time.perf_counter() - _state["t0"]) * 1000.0
        gen = info.get("generation", 0)
        if gen == 0:
            _state["n0"] += 1
            _state["ms0"] += ms
            return
        try:
            if _fd is None:
                _fd = os.open(os.path.join(_dir, f"gc-{os.getpid()}.log"),
                              os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            os.write(_fd, (f"{time.monotonic():.6f} {gen} {ms:.3f} {info.get('collected', 0)} "
                           f"{_state['n0']} {_state['ms0']:.3f}\n").encode())
        except OSError:
            pass

    gc.callbacks.append(_cb)

    _freeze = os.environ.get("BENCH_GC_FREEZE_AFTER")
    if _freeze:
        import threading

        def _do_freeze():
            gc.collect()
            gc.freeze()
            try:
                with open(os.path.join(_dir, f"freeze-{os.getpid()}.log"), "w") as f:
                    f.write(f"{time.monotonic():.6f} frozen {gc.get_freeze_count()}\n")
            except OSError:
                pass

        _t = threading.Timer(float(_freeze), _do_freeze)
        _t.daemon = True
        _t.start()

    if os.environ.get("BENCH_GC_GARBAGE"):
        import collections
        import json
        import threading

        def _garbage_watch():
            start = os.path.join(_dir, "garbage-start")
            stop = os.path.join(_dir, "garbage-stop")
            while not os.path.exists(start):
                time.sleep(0.5)
            gc.collect()
            gc.garbage.clear()
            gc.set_debug(gc.DEBUG_SAVEALL)
            while not os.path.exists(stop):
                time.sleep(0.5)
            gc.collect()
            gc.set_debug(0)
            kinds = collections.Counter()
            for o in gc.garbage:
                t = type(o)
                name = f"{t.__module__}.{t.__qualname__}"
                if t.__name__ == "function":
                    name += f" {o.__module__}.{o.__qualname__}"
                elif t.__name__ == "method":
                    name += f" {type(o.__self__).__name__}.{o.__func__.__qualname__}"
                kinds[name] += 1
            n = len(gc.garbage)
            gc.garbage.clear()
            with open(os.path.join(_dir, f"garbage-{os.getpid()}.json"), "w") as f:
                json.dump({"objects": n, "types": kinds.most_common(60)}, f)

        threading.Thread(target=_garbage_watch, daemon=True).start()

    _brk = os.environ.get("BENCH_BREAK_LOGIN_URL_CYCLE")
    if _brk:
        import sys
        import threading
        import types
        import weakref

        def _break():
            ext = sys.modules.get("jupyterhub.singleuser.extension")
            if ext is None:
                return
            orig = ext.JupyterHubIdentityProvider._patch_get_login_url

            def _patch_get_login_url(self, handler):
                orig(self, handler)
                f = handler.__dict__.get("get_login_url")
                if f is None or not f.__closure__:
                    return
                proxy = weakref.proxy(handler)
                for c in f.__closure__:
                    v = c.cell_contents
                    if v is handler:
                        c.cell_contents = proxy
                    elif isinstance(v, types.MethodType) and v.__self__ is handler:
                        c.cell_contents = types.MethodType(v.__func__, proxy)

            ext.JupyterHubIdentityProvider._patch_get_login_url = _patch_get_login_url
            with open(os.path.join(_dir, f"break-{os.getpid()}.log"), "w") as f:
                f.write(f"{time.monotonic():.6f} patched\n")

        _bt = threading.Timer(float(_brk), _break)
        _bt.daemon = True
        _bt.start()
