"""Where the test suite's time goes: every XLA compilation, by test and by program (issue 17's suite target).

A pytest plugin and its summary. Run the suite with it as on a fresh checkout (the tests' compile cache
emptied first; a program the other worker already compiled is then loaded from it, and counted as a load,
not a compilation), then summarise::

    rm -rf /tmp/cprof .cache/xla-tests && PYTHONPATH=benchmarks .venv/bin/python -m pytest -q -n auto -p compile_profile
    .venv/bin/python benchmarks/compile_profile.py /tmp/cprof

Each process (each xdist worker) appends one line per compilation to ``$RNNJAX_COMPILE_PROFILE/<pid>.tsv``
(default ``/tmp/cprof``): the test running it, ``compile`` or ``load`` (a persistent-cache hit), the
program's name and the seconds (from ``jax_log_compiles``), plus one line per test phase with its
duration and the wall-clock start and finish of each test (the summary's timeline: when each worker
started, ran its first test and finished, so an idle worker at the end shows). Programs compiled in
processes the tests start (the experiments' CLIs) are in those tests' durations, not in the compile
columns.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import sys
import time
from pathlib import Path

OUT = Path(os.environ.get("RNNJAX_COMPILE_PROFILE", "/tmp/cprof"))
FINISHED = re.compile(r"Finished XLA compilation of (.+?) in ([0-9.e-]+) ?s")
HIT = "Persistent compilation cache hit"  # logged just before its "Finished XLA compilation" line
EAGER = {"multiply", "dynamic_slice", "broadcast_in_dim", "true_divide", "add", "convert_element_type",
         "subtract", "squeeze", "stage", "unstack", "transpose", "iota", "_reduce_sum", "_reduce_max",
         "concatenate", "reshape", "select_n", "_where", "integer_pow", "exp", "log", "tanh", "sqrt"}

_current = ["<collection>"]
_hit = [False]
_file = None


class _Record(logging.Handler):
    def emit(self, record):
        message = record.getMessage()
        if message.startswith(HIT):
            _hit[0] = True
            return
        m = FINISHED.search(message)
        if m and _file is not None:
            kind, _hit[0] = ("load" if _hit[0] else "compile"), False
            _file.write(f"{_current[0]}\t{kind}\t{m.group(1)[:80]}\t{m.group(2)}\n")


def pytest_configure(config):
    global _file
    import jax

    if os.environ.get("PYTEST_XDIST_WORKER") is None and getattr(config.option, "numprocesses", None):
        return  # the xdist controller runs no tests
    jax.config.update("jax_log_compiles", True)
    OUT.mkdir(parents=True, exist_ok=True)
    _file = open(OUT / f"{os.getpid()}.tsv", "a", buffering=1)  # noqa: SIM115 (open for the session)
    _file.write(f"<process>\tstart\t-\t{time.time()}\n")
    logger = logging.getLogger("jax")  # the children's records reach it once (one handler, here)
    logger.addHandler(_Record(logging.DEBUG))
    logger.setLevel(logging.WARNING)  # with jax_log_compiles, compilations and cache hits log at WARNING
    logger.propagate = False  # the compile log stays out of the console


def pytest_runtest_setup(item):
    _current[0] = item.nodeid


def pytest_runtest_logstart(nodeid, location):
    if _file is not None:
        _file.write(f"{nodeid}\tstart\t-\t{time.time()}\n")


def pytest_runtest_logfinish(nodeid, location):
    if _file is not None:
        _file.write(f"{nodeid}\tfinish\t-\t{time.time()}\n")


def pytest_runtest_logreport(report):
    if _file is not None and report.when in ("setup", "call"):
        _file.write(f"{report.nodeid}\tduration\t{report.when}\t{report.duration}\n")


def summarize(folder: Path, top: int = 30) -> str:
    """The profile's totals, its modules by test time, its programs by compile time, and its costliest tests."""
    compile_s, count, dur, loads = collections.Counter(), collections.Counter(), collections.Counter(), [0, 0.0]
    by_name, name_count, spans = collections.Counter(), collections.Counter(), {}
    for path in sorted(folder.glob("*.tsv")):
        for line in path.read_text().splitlines():
            test, kind, what, seconds = line.split("\t")
            if kind in ("start", "finish"):
                spans.setdefault(path.stem, []).append((float(seconds), kind, test))
            elif kind == "load":
                loads[0], loads[1] = loads[0] + 1, loads[1] + float(seconds)
            elif kind == "compile":
                compile_s[test] += float(seconds)
                count[test] += 1
                name = what[4:-1] if what.startswith("jit(") else what
                by_name["(eager ops)" if name in EAGER else name] += float(seconds)
                name_count["(eager ops)" if name in EAGER else name] += 1
            else:
                dur[test] += float(seconds)
    module = lambda test: test.split("::")[0]
    mods = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for test, s in dur.items():
        mods[module(test)][0] += s
    for test, s in compile_s.items():
        mods[module(test)][1] += s
        mods[module(test)][2] += count[test]
    lines = [f"{sum(count.values())} compilations, {sum(compile_s.values()):.0f} s of XLA compile; {loads[0]} "
             f"programs loaded from the cache ({loads[1]:.0f} s); {sum(dur.values()):.0f} s of test time summed "
             "over the processes", "",
             f"{'module':48s} {'test s':>7s} {'compile s':>9s} {'programs':>8s}"]
    lines += [f"{m:48s} {v[0]:7.1f} {v[1]:9.1f} {v[2]:8d}" for m, v in sorted(mods.items(), key=lambda kv: -kv[1][0])]
    lines += ["", f"{'program':48s} {'compile s':>9s} {'count':>6s}"]
    lines += [f"{n:48s} {s:9.1f} {name_count[n]:6d}" for n, s in by_name.most_common(top)]
    lines += ["", f"{'test':90s} {'compile s':>9s} {'programs':>8s} {'test s':>7s}"]
    lines += [f"{t[:90]:90s} {s:9.1f} {count[t]:8d} {dur.get(t, 0.0):7.1f}" for t, s in compile_s.most_common(top)]
    return "\n".join(lines + timeline(spans))


def timeline(spans: dict) -> list[str]:
    """Per process: when it started, ran its first and last test, and the seconds spent inside tests."""
    if not spans:
        return []
    t0 = min(t for events in spans.values() for t, _, _ in events)
    lines = ["", "seconds from the first process's start:",
             f"{'process':10s} {'start':>6s} {'first test':>10s} {'last end':>8s} {'in tests':>8s}"]
    for pid, events in sorted(spans.items()):
        starts = {test: t for t, kind, test in events if kind == "start" and test != "<process>"}
        ends = [(t, test) for t, kind, test in events if kind == "finish"]
        if not starts or not ends:  # a process that ran no test
            continue
        proc = [t for t, kind, test in events if test == "<process>"]
        inside = sum(t - starts[test] for t, test in ends if test in starts)
        lines.append(f"{pid:10s} {(proc[0] if proc else t0) - t0:6.1f} {min(starts.values()) - t0:10.1f} "
                     f"{max(t for t, _ in ends) - t0:8.1f} {inside:8.1f}")
    return lines


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
