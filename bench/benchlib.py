"""What the benchmarks share: the machine line and the sections of bench/RESULTS.md.

Each benchmark owns one section of RESULTS.md, starting at its "## " title; writing
replaces that section and keeps every other one (bench_run.py owns the file's top)."""

import platform
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def pct(xs, p):
    """Percentile with linear interpolation (numpy's default)."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def wait_until(fn, timeout, interval, what="condition"):
    """fn()'s first true value, polled every interval seconds; RuntimeError
    after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def free_port():
    """A TCP port free on 127.0.0.1 now (bind to 0)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def replace_section(title, section):
    """Put `section` (starting with `title`) where the old one was, or at the end."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    i = text.find(title)
    if i >= 0:
        j = text.find("\n## ", i + len(title))
        text = text[:i] + section + ("\n" + text[j + 1:] if j >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)
