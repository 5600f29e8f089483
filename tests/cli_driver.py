"""Run one CLI module as ``python -m`` would, once per case, in one interpreter (cases share the imports).

    python tests/cli_driver.py < cases.json > results.json

``cases.json`` is a list of ``{"module": "experiments.x", "argv": [...], "watch": DIR}`` (and optionally
``"env": {NAME: VALUE}``, set for that case). Each case
runs the module's ``__main__`` block through :func:`runpy.run_module` with ``sys.argv`` set, stdout
and stderr captured; an exception that escapes is printed with its traceback, as the interpreter
would. For each case the result holds the exit status, stdout, stderr, and a digest of every file
and folder under ``watch`` (names, bytes and modes) before and after.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import runpy
import sys
import traceback
import warnings
from pathlib import Path


def digest(root) -> dict:
    """``{relative path: sha256 + mode}`` of every file and folder under ``root`` (hidden names too)."""
    root = Path(root)
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            mode = oct(path.lstat().st_mode)
            found[rel] = mode if path.is_dir() else f"{mode} {hashlib.sha256(path.read_bytes()).hexdigest()}"
    return found


@contextlib.contextmanager
def environment(extra: dict):
    """``os.environ`` with ``extra`` set for the block."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def run_case(case: dict) -> dict:
    before = digest(case["watch"])
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [case["module"], *case["argv"]]
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings(), \
            environment(case.get("env", {})):
        warnings.simplefilter("default")
        try:
            runpy.run_module(case["module"], run_name="__main__", alter_sys=True)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
    return {"code": code, "out": out.getvalue(), "err": err.getvalue(), "before": before,
            "after": digest(case["watch"])}


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    cases = json.load(sys.stdin)
    results = [run_case(c) for c in cases]
    sys.stdout.write(json.dumps(results))
