"""A real, long experiment process: a second run into its folder is refused at once naming its pid, and Ctrl-C
(SIGINT) ends it with exit 130 within 3 s, leaving ``--out`` as it was (no temporary folder, no lock)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_driver import digest
from test_cli import env

from experiments._cli import MARKER

# the remedies experiment at its full sizes: minutes of training, long past every wait below
LONG = [sys.executable, "-m", "experiments.remedies", "--no-variants", "--models", "rnn_tanh", "--adding-seeds", "1"]


def _previous_run(out: Path) -> None:
    """``out`` as a finished remedies run leaves it (its marker lists its files)."""
    out.mkdir()
    (out / "metrics.json").write_text('{"previous": true}\n')
    (out / MARKER).write_text(json.dumps({"experiment": "remedies", "files": ["metrics.json"]}))


def _start_long(out: Path, cwd: Path) -> subprocess.Popen:
    """The long run, once it holds ``out``'s lock and has begun working in its temporary folder."""
    proc = subprocess.Popen([*LONG, "--out", str(out)], cwd=cwd, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (out.parent / f".{out.name}.lock").exists() and any(out.parent.glob(f".{out.name}.tmp-*")):
            return proc
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"the long run never started working: {proc.communicate()[1][-2000:]}")


def test_a_second_run_into_a_folder_in_use_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "out"
    _previous_run(out)
    first = _start_long(out, tmp_path)
    try:
        second = subprocess.run([*LONG, "--out", str(out)], cwd=tmp_path, env=env(), capture_output=True, text=True,
                                timeout=240)
        assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1, second.stderr[-2000:]
        assert f"is in use by another run (pid {first.pid})" in second.stderr
        assert first.poll() is None  # the first run goes on
    finally:
        first.kill()
        first.wait()
    assert json.loads((out / "metrics.json").read_text()) == {"previous": True}


@pytest.mark.xfail(strict=False, reason="needs trainings chunked to ~1 s (issue 20 item 5, the main-job helper's "
                                        "part): a signal waits until the running compiled program returns")
def test_ctrl_c_exits_130_within_3_s_and_leaves_out_untouched(tmp_path):
    out = tmp_path / "out"
    _previous_run(out)
    before = digest(tmp_path)
    proc = _start_long(out, tmp_path)
    time.sleep(2.0)  # well into compiling and training
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    took = time.monotonic() - t0
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "remedies: interrupted; the output folder was left as it was"
    assert "Traceback" not in err
    assert digest(tmp_path) == before  # --out whole, its temporary folder and lock gone
    assert took < 3.0, f"exit {took:.1f} s after SIGINT"

