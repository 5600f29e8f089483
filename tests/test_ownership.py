"""Nothing a user owns is ever replaced, and one run at a time per folder: experiments/_cli.py's ownership
marker, ``--force``, the OS lock, the swap that keeps strays, Ctrl-C, and the flag rules (no JAX here)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_driver import digest

from experiments import _cli


def _run(out: Path, files: dict, experiment: str = "exp", **kw) -> None:
    """One completed run of ``experiment`` writing ``files`` ({relative path: text}) into ``out``."""
    _cli.check_out(out, experiment=experiment, **kw)
    with _cli.atomic_folder(out, experiment, **kw) as tmp:
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text)


def _tree(out: Path) -> dict:
    return {p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_finished_run_of_the_same_experiment_is_replaced_whole(tmp_path):
    out = tmp_path / "out"
    _run(out, {"a.txt": "1", "sub/b.txt": "2", "metrics.json": "{}"})
    marker = json.loads((out / _cli.MARKER).read_text())
    assert marker == {"experiment": "exp", "files": ["a.txt", "metrics.json", "sub", "sub/b.txt"]}
    _run(out, {"c.txt": "3", "metrics.json": "{}"})
    assert set(_tree(out)) == {"c.txt", "metrics.json", _cli.MARKER}  # the old run's files went with it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no lock, temp or old folder left


@pytest.mark.parametrize("stray", ["my_notes.txt", "sub/mine/notes.txt", "c/stooq/aapl.us.csv"])
def test_anything_a_run_did_not_write_is_refused_and_force_keeps_it(tmp_path, stray):
    out = tmp_path / "out"
    _run(out, {"a.txt": "1", "sub/b.txt": "2", "metrics.json": "{}"})
    (out / stray).parent.mkdir(parents=True, exist_ok=True)
    (out / stray).write_text("the user's")
    named = stray if stray.startswith("my") else stray.rsplit("/", 1)[0] if stray.startswith("sub") else "c"
    before = digest(out)
    with pytest.raises(_cli.UsageError, match=f"holds {named}, which no exp run wrote.*--force") as err:
        _run(out, {"a.txt": "new"})
    assert len(str(err.value).splitlines()) == 1 and digest(out) == before
    _run(out, {"a.txt": "new", "metrics.json": "{}"}, force=True)
    assert _tree(out) == {"a.txt": "new", "metrics.json": "{}", stray: "the user's",
                          _cli.MARKER: (out / _cli.MARKER).read_text()}
    assert stray not in json.loads((out / _cli.MARKER).read_text())["files"]  # still not the run's
    again = "holds sub," if stray.startswith("sub") else named  # sub/ itself is no longer the run's
    with pytest.raises(_cli.UsageError, match=again):  # ... so the next run without --force is refused again
        _run(out, {"a.txt": "newer"})


def test_a_folder_no_run_wrote_is_refused_and_force_never_overwrites_its_metrics(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text("the user's")
    with pytest.raises(_cli.UsageError, match="no finished run otherwise"):
        _run(out, {"metrics.json": "{}"})
    with pytest.raises(_cli.UsageError, match="metrics.json.*even --force never replaces it"):
        _run(out, {"metrics.json": "{}"}, force=True)
    assert (out / "metrics.json").read_text() == "the user's"


def test_another_experiments_run_and_the_main_jobs_folder_are_always_refused(tmp_path):
    out = tmp_path / "out"
    _run(out, {"metrics.json": "{}"}, experiment="gradient_stability")
    for force in (False, True):
        with pytest.raises(_cli.UsageError, match="holds a finished gradient_stability run, not a stock_forecast"):
            _run(out, {"metrics.json": "{}"}, experiment="stock_forecast", force=force)
    job = tmp_path / "runs" / "stock_forecast"
    job.mkdir(parents=True)
    (job / _cli.MAIN_JOB_MARK).write_text("")
    with pytest.raises(_cli.UsageError, match="main job's folder"):
        _run(job, {"metrics.json": "{}"}, experiment="stock_forecast", force=True)


def test_a_swap_killed_after_its_renames_keeps_the_users_files(tmp_path):
    """A run killed between swapping in its folder and moving the user's files over: the next start moves
    them into place instead of deleting the old folder with them."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out = tmp_path / "out"
    _run(out, {"metrics.json": "{}"})
    old = tmp_path / f".out.old-{int(dead.stdout)}"
    out.rename(old)
    (old / "mine.txt").write_text("the user's")
    _run(tmp_path / "fresh", {"metrics.json": "new"})
    (tmp_path / "fresh").rename(out)
    assert _cli.clean_stale(out) == [old] and not old.exists()
    assert (out / "mine.txt").read_text() == "the user's" and (out / "metrics.json").read_text() == "new"


HOLD = """
import sys, time
from pathlib import Path
from experiments import _cli
with _cli.out_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_run_into_the_same_folder_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    root = str(Path(__file__).parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        for attempt in (lambda: _cli.check_out(out, experiment="exp"), lambda: _run(out, {"a": "1"})):
            t0 = time.monotonic()
            with pytest.raises(_cli.UsageError, match=rf"--out {out} is in use by another run \(pid {holder.pid}\)"):
                attempt()
            assert time.monotonic() - t0 < 1.0  # refused at once, not after waiting
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed holder: the OS releases its lock
        holder.wait()
    _run(out, {"a": "1"})
    assert (out / "a").read_text() == "1"


def test_ctrl_c_inside_a_run_exits_130_with_one_line_and_out_untouched(tmp_path, capsys):
    out = tmp_path / "out"
    _run(out, {"metrics.json": "old"})
    before = digest(tmp_path)

    def main(argv):
        with _cli.atomic_folder(out, "exp") as tmp:
            (tmp / "metrics.json").write_text("half")
            raise KeyboardInterrupt

    assert _cli.entry(main, "exp", []) == _cli.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("exp: interrupted") and "Traceback" not in err
    assert digest(tmp_path) == before  # no temporary folder, no lock file, --out as it was


def _parser():
    p = _cli.Parser("demo", None)
    p.add_argument("--rhos", type=float, nargs="+", action=_cli.Distinct, default=[0.9, 1.2])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--hidden", type=int, default=50)
    p.add_argument("--quick", action="store_true")
    return p


def test_a_value_given_twice_is_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        _parser().parse_args(["--rhos", "0.9", "1.2", "0.90"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "--rhos: values must be distinct; 0.9 given twice" in err
    assert _parser().parse_args(["--rhos", "0.9", "0.99"]).rhos == [0.9, 0.99]


@pytest.mark.parametrize(("argv", "seeds", "hidden"), [(["--quick"], 2, 16), (["--quick", "--seeds", "7"], 7, 16),
                                                        (["--seeds", "7", "--quick", "--hidden=50"], 7, 50),
                                                        (["--seeds", "7"], 7, 50)])
def test_quick_sizes_are_defaults_that_explicit_flags_override(argv, seeds, hidden):
    p = _parser()
    args = p.parse_args(argv)
    if args.quick:
        _cli.apply_quick(p, argv, args, {"seeds": 2, "hidden": 16})
    assert (args.seeds, args.hidden) == (seeds, hidden)
    assert _cli.given_flags(p, argv) == {a.lstrip("-").split("=")[0] for a in argv if a.startswith("--")}


def test_given_flags_sees_a_value_equal_to_the_default():
    p = _parser()
    assert _cli.given_flags(p, ["--seeds", "5"]) == {"seeds"}  # 5 is the default, yet given
    assert isinstance(p.parse_args([]), argparse.Namespace)
