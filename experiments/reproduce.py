"""The main job: run every experiment on the embedded data, then write the results page.

    python -m experiments.reproduce [--quick] [--out runs/] [--only NAME ...] [--jobs N]

Each experiment runs into a hidden temporary folder that replaces ``OUT/<name>/`` only once the
experiment has finished, so an interrupted run never leaves a half-written result that the page
would read as complete. The page, ``OUT/report.md``, is then built from the JSON files alone.
The job replaces only folders it wrote (marked ``.made-by-reproduce``); a standalone experiment's
default folder is ``runs/<name>-<date>-<time>``, so the two never meet.

The experiments run as their own processes (``python -m experiments.<name>``), ``--jobs`` at once
(default: one per core; the longest first), each line they print prefixed with their name; with
``--jobs 1`` they run one after the other in this process. Every experiment compiles at XLA
optimisation level 1 and keeps its compiled programs in JAX's persistent compilation cache
(``experiments/job.py``; ``RNNJAX_NO_COMPILE_CACHE=1`` turns the cache off), so a repeated run
mostly skips compiling.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

from experiments import _cli


class Stage(NamedTuple):
    name: str  # module under experiments/ and folder under OUT/
    title: str
    args: tuple[str, ...]  # extra arguments of the full run (defaults are the report's settings)
    quick_args: tuple[str, ...]  # extra arguments of --quick
    cost: float = 0.0  # seconds of the full run (2026-12-02, two at a time on 2 cores): the longest start first


STAGES = (
    Stage("stock_forecast", "Experiment 1: next-day stock price (report §3)", ("--seeds", "4"), ("--quick",), 26),
    Stage("stock_variants", "Experiment 1's variants: log-returns, a loss at every step, Adam, LSTM, GRU",
          ("--seeds", "4"), ("--quick", "--seeds", "2"), 303),
    Stage("gradient_stability", "Experiment 2: gradient norm vs spectral radius (report §5)", ("--seeds", "4"),
          ("--quick",), 12),
    Stage("gradient_spectra", "Lag profiles, Jacobian spectra, Lyapunov exponents, phase diagram", (), ("--quick",),
          32),
    Stage("remedies", "Remedies: clipping, LSTM/GRU, IRNN, the adding problem", (), ("--quick",), 261),
    Stage("flossing", "Gradient flossing on the delayed recall of one bit (Engelken 2023)", (), ("--quick",), 114),
)


MARK = _cli.MAIN_JOB_MARK  # in every OUT/<name> this job wrote (and in OUT): the only folders it will ever replace
PAGE_FILES = ("run.json", "reference.json", "report.md", "report_sources.json")  # what the job writes into OUT itself


def foreign_folders(out: Path, stages) -> list[Path]:
    """``OUT/<name>`` folders of ``stages`` that this job did not write (no :data:`MARK`): never replaced."""
    return [out / s.name for s in stages if (out / s.name).exists() and not (out / s.name / MARK).is_file()]


def _ours(out: Path) -> bool:
    """Whether OUT's own files (:data:`PAGE_FILES`) are this job's: OUT holds the job's mark, or (written before
    OUT had one) one of the job's own ``OUT/<name>`` folders does."""
    return (out / MARK).is_file() or any((out / s.name / MARK).is_file() for s in STAGES)


def check_out_folder(out: Path, stages, *, force: bool = False) -> None:
    """Refuse an OUT that holds what the job would replace or overwrite without having written it.

    A page file (:data:`PAGE_FILES`) the job did not write is refused, even with ``--force``. Anything
    else in OUT that is not the job's -- a user's file, a folder that is no finished run -- or a
    user's file inside one of the job's ``OUT/<name>`` folders is refused unless ``force`` (then it
    is kept, never touched). Finished standalone runs (``runs/<name>-<date>``) may sit beside.
    """
    if out.exists() and not out.is_dir():
        raise _cli.UsageError(f"--out {out} is a file, not a folder")
    _cli.check_writable(out)
    foreign = foreign_folders(out, stages)
    if foreign:
        raise _cli.UsageError(f"{', '.join(map(str, foreign))} {'was' if len(foreign) == 1 else 'were'} not written "
                              f"by the main job, which replaces only its own folders; move "
                              f"{'it' if len(foreign) == 1 else 'them'} away or choose another --out")
    if not out.is_dir():
        return
    users = [] if _ours(out) else [out / f for f in PAGE_FILES if (out / f).exists()]
    if users:
        raise _cli.UsageError(f"--out {out} holds {', '.join(map(str, users))}, which the main job did not write "
                              f"and would overwrite (not even --force does); move {'it' if len(users) == 1 else 'them'}"
                              f" away or choose another --out")
    names = {s.name for s in STAGES} | set(PAGE_FILES) | {MARK}
    ours = lambda p: (p.name in names or _cli.read_marker(p) is not None  # a finished standalone run
                      or (p.name.startswith(".") and any(t in p.name for t in (".lock", ".partial", ".tmp-", ".old-"))))
    stray = [str(p) for p in sorted(out.iterdir()) if not ours(p)]
    stray += [str(out / s.name / rel) for s in stages for rel in _cli.strays(out / s.name)]
    if stray and not force:
        it = "it" if len(stray) == 1 else "them"
        raise _cli.UsageError(f"--out {out} holds {', '.join(stray[:3])}{' and more' if len(stray) > 3 else ''}, "
                              f"which the main job did not write; move {it} away, choose another --out, or pass "
                              f"--force to keep {it} (never deleted)")


def _begin(stage: Stage, out: Path) -> tuple[Path, Path]:
    """``(final, partial)`` folders of ``stage``: refuses a final folder this job did not write, and clears a
    killed run's leftover partial folder (a hidden name of our own)."""
    final, partial = out / stage.name, out / f".{stage.name}.partial"
    if final.exists() and not (final / MARK).is_file():
        raise _cli.UsageError(f"{final} was not written by the main job; move it away or choose another --out")
    shutil.rmtree(partial, ignore_errors=True)
    return final, partial


def _publish(stage: Stage, partial: Path, final: Path) -> None:
    """Mark a finished ``partial`` folder as this job's (:data:`MARK`) and swap it into ``final``."""
    (partial / MARK).write_text(f"written by python -m experiments.reproduce ({stage.name})\n")
    _cli.replace_folder(partial, final)


def run_stage(stage: Stage, out: Path, quick: bool) -> dict:
    """Run one experiment in this process into ``out/.<name>.partial`` and move it to ``out/<name>`` when complete.

    If the experiment raises, ``out/<name>`` keeps the previous results. The folder is marked as
    this job's (:data:`MARK`); a folder without the mark is refused, never replaced.
    """
    final, partial = _begin(stage, out)
    module = importlib.import_module(f"experiments.{stage.name}")
    metrics = module.main(_argv(stage, partial, quick))
    _publish(stage, partial, final)
    return metrics


def _argv(stage: Stage, out: Path, quick: bool) -> list[str]:
    """The experiment's arguments: the full run's or --quick's, writing into ``out``."""
    return [*(stage.quick_args if quick else stage.args), "--out", str(out)]


def command(stage: Stage, out: Path, quick: bool) -> list[str]:
    """The command line that runs ``stage`` as its own process into ``out``."""
    return [sys.executable, "-m", f"experiments.{stage.name}", *_argv(stage, out, quick)]


def _started(i: int, n: int, stage: Stage, quick: bool) -> str:
    return f"[{i}/{n}] {stage.name}: {stage.title} ({'quick' if quick else 'full'})"


def _finished(i: int, n: int, stage: Stage, seconds: float, elapsed: float, final: Path) -> str:
    return f"[{i}/{n}] {stage.name} done in {seconds:.1f} s (elapsed {elapsed:.1f} s); moved into place: {final}/"


def run_stages_parallel(stages: list[Stage], out: Path, quick: bool, jobs: int, start: float) -> tuple[dict, list]:
    """Run ``stages`` as processes, ``jobs`` at a time, the longest (:attr:`Stage.cost`) first; publish each
    that succeeds as :func:`run_stage` does. Returns ``(seconds per finished stage, failure lines)``."""
    for stage in stages:
        _begin(stage, out)  # every check before any work
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    lock, slots = threading.Lock(), threading.Semaphore(jobs)
    seconds, failures, running = {}, [], []

    def say(line: str) -> None:
        with lock:
            print(line, flush=True)

    def one(i: int, stage: Stage) -> None:
        with slots:
            final, partial = _begin(stage, out)
            say(_started(i, len(stages), stage, quick))
            t0 = time.perf_counter()
            proc = subprocess.Popen(command(stage, partial, quick), env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            running.append(proc)
            for line in proc.stdout:
                say(f"  {stage.name} | {line.rstrip()}")
            if proc.wait() != 0:
                shutil.rmtree(partial, ignore_errors=True)
                failures.append(f"{stage.name} failed (exit status {proc.returncode}); {final} was left as it was")
                say(f"[{i}/{len(stages)}] {stage.name} FAILED (exit status {proc.returncode})")
                return
            _publish(stage, partial, final)
            seconds[stage.name] = time.perf_counter() - t0
            say(_finished(i, len(stages), stage, seconds[stage.name], time.perf_counter() - start, final))

    order = sorted(enumerate(stages, 1), key=lambda item: -item[1].cost)
    threads = [threading.Thread(target=one, args=item) for item in order]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:  # an interrupt stops the experiment processes too
        for proc in running:
            if proc.poll() is None:
                proc.kill()
    return seconds, failures


def build_parser():
    parser = _cli.Parser("reproduce", __doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes: seconds, for a first look and CI")
    parser.add_argument("--out", type=Path, default=Path("runs"),
                        help="output folder (default: runs/); each experiment replaces only OUT/<name>")
    parser.add_argument("--only", nargs="+", choices=[s.name for s in STAGES], default=None,
                        help="run only these experiments (the page uses what is in OUT)")
    parser.add_argument("--jobs", type=_cli.number(int, min=1, max=64), default=None,
                        help="experiments run at once as their own processes (default: one per core); "
                             "1: one after the other in this process")
    parser.add_argument("--force", action="store_true", help="run although --out holds files the job did not "
                        "write; they are kept, never deleted (a page file of the user's is still refused)")
    return parser


def main(argv: list[str] | None = None) -> Path | int:
    args = build_parser().parse_args(argv)
    stages = [s for s in STAGES if args.only is None or s.name in args.only]
    check_out_folder(args.out, stages, force=args.force)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as locks:  # one job per OUT, and no standalone run into OUT/<name> meanwhile
        locks.enter_context(_cli.out_lock(args.out))
        args.out.mkdir(exist_ok=True)
        for stage in stages:
            locks.enter_context(_cli.out_lock(args.out / stage.name))
        check_out_folder(args.out, stages, force=args.force)  # again, under the locks
        (args.out / MARK).write_text(f"written by python -m experiments.reproduce: {', '.join(PAGE_FILES)} and "
                                     f"its experiments' folders\n")
        return _run(args, stages)


def _run(args, stages) -> Path | int:
    from experiments.job import start

    start()  # one XLA host device per core, compile level and cache, before JAX starts; inherited by the stages
    from experiments.report import write_report

    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    jobs = min(args.jobs or os.cpu_count() or 1, len(stages))
    if jobs > 1:
        seconds, failures = run_stages_parallel(stages, args.out, args.quick, jobs, t_start)
        if failures:
            for line in failures:
                print(f"reproduce: {line}", file=sys.stderr)
            print(f"reproduce: no page written: {len(failures)} of {len(stages)} experiments failed "
                  f"(their output above)", file=sys.stderr)
            return _cli.EXIT_FAILED
    else:
        seconds = {}
        for i, stage in enumerate(stages, 1):
            print("\n" + _started(i, len(stages), stage, args.quick), flush=True)
            t0 = time.perf_counter()
            run_stage(stage, args.out, args.quick)
            seconds[stage.name] = time.perf_counter() - t0
            print(_finished(i, len(stages), stage, seconds[stage.name], time.perf_counter() - t_start,
                            args.out / stage.name), flush=True)
    from rnnjax.devices import environment
    from rnnjax.io import write_json

    total = time.perf_counter() - t_start
    write_json(args.out / "run.json", {"quick": args.quick, "stages": [s.name for s in stages], "jobs": jobs,
                                       "seconds": seconds, "total_seconds": total, "environment": environment()})
    page = write_report(args.out, quick=args.quick)
    print(f"\nAll done in {total:.1f} s ({jobs} at a time). Results page: {page}; check it (and the docs) with "
          f"python -m experiments.check_report {args.out}")
    return page


if __name__ == "__main__":
    _cli.run_as_command(main, "reproduce")
