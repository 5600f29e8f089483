"""A real, long experiment process: a second run into its folder is refused at once naming its pid, and Ctrl-C
(SIGINT) ends it with exit 130 within 3 s, leaving ``--out`` as it was (no temporary folder, no lock)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli_driver import digest
from test_cli import env

from experiments._cli import MARKER

# the remedies experiment at its full sizes: minutes of training, long past every wait below (its clipping part, one
# compiled call, cut to one step of one seed: the adding problem's training is the part that runs in pieces of ~1 s)
LONG = [sys.executable, "-m", "experiments.remedies", "--no-variants", "--models", "rnn_tanh", "--adding-seeds", "1",
        "--clip-lrs", "1e-3", "--clip-steps", "1", "--clip-seeds", "1"]


EVERY_1_S = {"RNNJAX_PROGRESS_EVERY": "1"}  # its first progress line after 1 s of training, not 10


def _previous_run(out: Path) -> None:
    """``out`` as a finished remedies run leaves it (its marker lists its files)."""
    out.mkdir()
    (out / "metrics.json").write_text('{"previous": true}\n')
    (out / MARKER).write_text(json.dumps({"experiment": "remedies", "files": ["metrics.json"]}))


def _start_long(out: Path, cwd: Path) -> subprocess.Popen:
    """The long run, once it holds ``out``'s lock and has begun working in its temporary folder."""
    proc = subprocess.Popen([*LONG, "--out", str(out)], cwd=cwd, env=env() | {"PYTHONUNBUFFERED": "1", **EVERY_1_S},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (out.parent / f".{out.name}.lock").exists() and any(out.parent.glob(f".{out.name}.tmp-*")):
            return proc
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"the long run never started working: {proc.communicate()[1][-2000:]}")


def _wait_for_line(proc: subprocess.Popen, text: str, timeout: float) -> None:
    """Read ``proc``'s standard output until a line holds ``text`` (the training it names has begun)."""
    found = threading.Event()

    def read():
        for line in proc.stdout:
            if text in line:
                found.set()
        found.set()  # end of output: stop waiting either way

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout) or proc.poll() is not None:
        proc.kill()
        pytest.fail(f"the long run never printed {text!r}")


def test_a_second_run_is_refused_naming_the_first_and_ctrl_c_exits_130_within_3_s_leaving_out_untouched(tmp_path):
    """One long run (one start-up and compile, not two): while it works, a second run into its folder is
    refused at once naming its pid, and it goes on; then Ctrl-C ends it."""
    out = tmp_path / "out"
    _previous_run(out)
    before = digest(tmp_path)
    proc = _start_long(out, tmp_path)
    try:
        second = subprocess.run([*LONG, "--out", str(out)], cwd=tmp_path, env=env(), capture_output=True, text=True,
                                timeout=240)
        assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1, second.stderr[-2000:]
        assert f"is in use by another run (pid {proc.pid})" in second.stderr
        assert proc.poll() is None  # the first run goes on
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    assert json.loads((out / "metrics.json").read_text()) == {"previous": True}
    # its first progress line comes after >= 1 s of the adding problem's training (compiled, running in pieces)
    _wait_for_line(proc, "elapsed", timeout=240)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        err = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    took = time.monotonic() - t0
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "remedies: interrupted; the output folder was left as it was"
    assert "Traceback" not in err
    assert digest(tmp_path) == before  # --out whole, its temporary folder and lock gone; the refused run left nothing
    assert took < 3.0, f"exit {took:.1f} s after SIGINT"
