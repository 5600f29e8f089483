"""The main job: the report reproduced on the embedded data, then the results page.

    python -m experiments.reproduce [--all] [--quick] [--out runs/] [--only NAME ...] [--jobs N]

Two tiers. The default, the **report tier**, runs what the report claims: Experiment 1 with its
persistence baseline (``stock_forecast``), Experiment 2 with its claims (``gradient_stability``)
and the gradient analysis (``gradient_spectra``). ``--all`` adds the **extended studies**
(``stock_variants``, ``remedies``, ``flossing``), whose sizes are set by their statistics, not by
a time budget, and runs every experiment a second time with ``--seed-base 1`` into ``OUT/<name>.base1``
(:func:`second_draw`; ``--second-draw`` adds it to the report tier or ``--only``): the page sets the
verdicts of the two draws side by side. ``--quick`` shrinks either tier to a smoke test.

Each experiment runs into a hidden temporary folder that replaces ``OUT/<name>/`` only once the
experiment has finished, so an interrupted run never leaves a half-written result that the page
would read as complete. The page, ``OUT/report.md``, is then built from the JSON files alone; it
says which tier made it. The job replaces only folders it wrote (marked ``.made-by-reproduce``).

The experiments run as their own processes (``python -m experiments.<name>``), ``--jobs`` at once
(default: one per core; the longest first), each line they print prefixed with their name; with
``--jobs 1`` they run one after the other in this process. Each stage prints one line when it
starts (numbered in the order the stages start, with its expected duration) and one when it ends,
and a progress line at least every 10 s in between (``RNNJAX_PROGRESS_EVERY`` seconds when set).
Every experiment compiles at XLA optimisation level 1 and keeps its compiled programs in JAX's
persistent compilation cache (``~/.cache/rnnjax/xla``; ``experiments/job.py``;
``RNNJAX_NO_COMPILE_CACHE=1`` turns it off), so a repeated run mostly skips compiling.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

from experiments import _cli
from experiments._progress import clock, progress_every


class Stage(NamedTuple):
    name: str  # module under experiments/ and folder under OUT/
    title: str
    args: tuple[str, ...]  # extra arguments of the full run (defaults are the report's settings)
    quick_args: tuple[str, ...]  # extra arguments of --quick
    cost: float = 0.0  # seconds of the full run, two at a time on 2 cores, cache warm: the longest start first
    quick_cost: float = 0.0  # the same for --quick
    extended: bool = False  # an extended study: runs with --all only
    base: int = 0  # its --seed-base: 0, or SECOND_BASE for the second draw (folder NAME.baseB)

    @property
    def module(self) -> str:
        """The experiment's module under ``experiments/`` (its folder is ``name``)."""
        return self.name.partition(".")[0]


# Costs: the full run of 2026-12-02 (README, "Performance"; load ~1, nothing cached); the quick runs of
# 2026-12-06 (load 2-9; stock_variants' estimated from its 8 variants x 20 epochs). Only the expected
# durations printed and the order the stages start in use them.
STAGES = (
    Stage("stock_forecast", "Experiment 1: next-day stock price, with the persistence baseline (report §3)",
          (), ("--quick",), 26, 17),
    Stage("gradient_stability", "Experiment 2: gradient norm vs spectral radius, the report's claims (report §5)",
          (), ("--quick",), 12, 9),
    Stage("gradient_spectra", "The gradient analysis: lag profiles, Jacobian spectra, Lyapunov exponents, phase "
          "diagram", (), ("--quick",), 32, 27),
    Stage("stock_variants", "Experiment 1's variants: log-returns, a loss at every step, Adam, LSTM, GRU",
          (), ("--quick", "--seeds", "2"), 303, 60, True),
    Stage("remedies", "Remedies: clipping, LSTM/GRU, IRNN, the adding problem", (), ("--quick",), 261, 33, True),
    Stage("flossing", "Gradient flossing on the delayed recall of one bit (Engelken 2023)", (), ("--quick",), 114,
          25, True),
)
REPORT_TIER = tuple(s.name for s in STAGES if not s.extended)
EXTENDED = tuple(s.name for s in STAGES if s.extended)
SECOND_BASE = 1  # the second draw's --seed-base: every verdict is checked on a second, disjoint set of seeds


def second_draw(stage: Stage) -> Stage:
    """``stage`` again with ``--seed-base`` :data:`SECOND_BASE` (its own seeds and generated data), into
    ``OUT/<name>.base1``: the page sets its verdicts beside the first draw's (issue 19, item 4)."""
    extra = ("--seed-base", str(SECOND_BASE))
    return stage._replace(name=f"{stage.name}.base{SECOND_BASE}", args=(*stage.args, *extra),
                          quick_args=(*stage.quick_args, *extra), base=SECOND_BASE)


ALL_FOLDERS = tuple(name for s in STAGES for name in (s.name, second_draw(s).name))  # every OUT/<folder> of a stage


MARK = _cli.MAIN_JOB_MARK  # in every OUT/<name> this job wrote (and in OUT): the only folders it will ever replace
PAGE_FILES = ("run.json", "reference.json", "report.md", "report_sources.json")  # what the job writes into OUT itself


def foreign_folders(out: Path, stages) -> list[Path]:
    """``OUT/<name>`` folders of ``stages`` that this job did not write (no :data:`MARK`): never replaced."""
    return [out / s.name for s in stages if (out / s.name).exists() and not (out / s.name / MARK).is_file()]



def _ours(out: Path) -> bool:
    """Whether OUT's own files (:data:`PAGE_FILES`) are this job's: OUT holds the job's mark, or (written before
    OUT had one) one of the job's own ``OUT/<name>`` folders does."""
    return (out / MARK).is_file() or any((out / name / MARK).is_file() for name in ALL_FOLDERS)


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
    names = set(ALL_FOLDERS) | set(PAGE_FILES) | {MARK}
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


def final_paths(partial: Path, final: Path):
    """``line -> line`` with every mention of the hidden ``partial`` folder (and of the experiment's own
    temporary sibling of it, ``.<partial name>.tmp-...``) replaced by ``final``: the job prints final paths only."""
    hidden_sibling = re.escape(str(partial.parent / ("." + partial.name))) + r"\.tmp-[^/\s]*"
    pattern = re.compile(hidden_sibling + "|" + re.escape(str(partial)) + r"(\.tmp-[^/\s]*)?")
    return lambda line: pattern.sub(str(final), line)


class _LineFilter(io.TextIOBase):
    """A text stream that passes each complete line through ``edit`` to ``sink`` (stdout of an in-process stage)."""

    def __init__(self, sink, edit, heard=None):
        self.sink, self.edit, self.heard, self.buffer = sink, edit, heard, ""

    def write(self, text: str) -> int:
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            self.sink.write(self.edit(line) + "\n")
            if self.heard is not None:
                self.heard()
        self.sink.flush()
        return len(text)

    def flush(self) -> None:
        if self.buffer:
            self.sink.write(self.edit(self.buffer))
            self.buffer = ""
        self.sink.flush()


def run_stage(stage: Stage, out: Path, quick: bool, heard=None) -> dict:
    """Run one experiment in this process into ``out/.<name>.partial`` and move it to ``out/<name>`` when complete.

    If the experiment raises, ``out/<name>`` keeps the previous results. The folder is marked as
    this job's (:data:`MARK`); a folder without the mark is refused, never replaced. What the
    experiment prints names the final folder, never the partial one; ``heard()`` is called at each line.
    """
    final, partial = _begin(stage, out)
    module = importlib.import_module(f"experiments.{stage.module}")
    stream = _LineFilter(sys.stdout, final_paths(partial, final), heard)
    with contextlib.redirect_stdout(stream):
        try:
            metrics = module.main(_argv(stage, partial, quick))
        finally:
            stream.flush()
    _publish(stage, partial, final)
    return metrics


def _argv(stage: Stage, out: Path, quick: bool) -> list[str]:
    """The experiment's arguments: the full run's or --quick's, writing into ``out``."""
    return [*(stage.quick_args if quick else stage.args), "--out", str(out)]


def command(stage: Stage, out: Path, quick: bool) -> list[str]:
    """The command line that runs ``stage`` as its own process into ``out``."""
    return [sys.executable, "-m", f"experiments.{stage.module}", *_argv(stage, out, quick)]


def expected(stage: Stage, quick: bool) -> float:
    """Seconds ``stage`` took on the development machine (:data:`STAGES`), compile cache warm."""
    return stage.quick_cost if quick else stage.cost


def expected_total(stages, quick: bool, jobs: int) -> float:
    """The job's expected seconds: the stages' costs spread over ``jobs`` at once, longest first (greedy)."""
    slots = [0.0] * max(1, jobs)
    for cost in sorted((expected(s, quick) for s in stages), reverse=True):
        slots[slots.index(min(slots))] += cost
    return max(slots)


def _started(i: int, n: int, stage: Stage, quick: bool) -> str:
    title = f"{stage.title}, second draw (--seed-base {stage.base})" if stage.base else stage.title
    return (f"[{i}/{n}] {stage.name} started: {title} ({'quick' if quick else 'full'}; about "
            f"{clock(expected(stage, quick))} on the 2-core development machine)")


def _finished(i: int, n: int, stage: Stage, seconds: float, elapsed: float, final: Path) -> str:
    return f"[{i}/{n}] {stage.name} done in {clock(seconds)} (job elapsed {clock(elapsed)}): {final}/"


def _still_running(i: int, n: int, stage: Stage, seconds: float, quick: bool) -> str:
    """The job's progress line for a stage that printed nothing for :func:`progress_every` seconds."""
    cost = expected(stage, quick)
    left = f"about {clock(cost - seconds)} left" if seconds < cost else "past the expected time"
    return f"[{i}/{n}] {stage.name} running: {clock(seconds)} elapsed of about {clock(cost)} expected, {left}"


class _Watch:
    """The stages running now, numbered in the order they start ([1/n], [2/n], ...), and a thread that prints
    a progress line for any of them silent for ``every`` seconds (:func:`progress_every`). Safe across threads."""

    def __init__(self, n: int, quick: bool):
        self.n, self.quick, self.count, self.every = n, quick, 0, progress_every()
        self.lock, self.stopped = threading.RLock(), threading.Event()  # re-entrant: an in-process stage's
        # stdout (a _LineFilter) calls heard() from inside say()
        self.active: dict[str, list] = {}  # stage name -> [number, stage, start time, time of its last line]
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def say(self, line: str, name: str | None = None) -> None:
        """Print ``line`` (whole, never interleaved) and count it as a sign of life of stage ``name``."""
        with self.lock:
            print(line, flush=True)
            if name in self.active:
                self.active[name][3] = time.monotonic()

    def begin(self, stage: Stage) -> int:
        """Number ``stage`` and print its start line; returns its number."""
        with self.lock:
            self.count += 1
            now = time.monotonic()
            self.active[stage.name] = [self.count, stage, now, now]
            i = self.count
        self.say(_started(i, self.n, stage, self.quick), stage.name)
        return i

    def heard(self, name: str) -> None:
        with self.lock:
            if name in self.active:
                self.active[name][3] = time.monotonic()

    def end(self, name: str) -> None:
        with self.lock:
            self.active.pop(name, None)

    def _beat(self) -> None:
        while not self.stopped.wait(min(1.0, self.every)):
            now = time.monotonic()
            with self.lock:
                quiet = [(i, s, now - t0) for i, s, t0, last in self.active.values() if now - last >= self.every]
            for i, s, sec in quiet:
                self.say(_still_running(i, self.n, s, sec, self.quick), s.name)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()


def run_stages_parallel(stages: list[Stage], out: Path, quick: bool, jobs: int, start: float) -> tuple[dict, list]:
    """Run ``stages`` as processes, ``jobs`` at a time, the longest (:func:`expected`) first; publish each
    that succeeds as :func:`run_stage` does. Returns ``(seconds per finished stage, failure lines)``."""
    for stage in stages:
        _begin(stage, out)  # every check before any work
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    slots, watch, n = threading.Semaphore(jobs), _Watch(len(stages), quick), len(stages)
    seconds, failures, running = {}, [], []
    say = watch.say

    def one(stage: Stage) -> None:
        with slots:
            final, partial = _begin(stage, out)
            i, t0 = watch.begin(stage), time.monotonic()
            edit = final_paths(partial, final)
            proc = subprocess.Popen(command(stage, partial, quick), env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            running.append(proc)
            for line in proc.stdout:
                say(f"  {stage.name} | {edit(line.rstrip())}", stage.name)
            code = proc.wait()
            watch.end(stage.name)
            if code != 0:
                shutil.rmtree(partial, ignore_errors=True)
                failures.append(f"{stage.name} failed (exit status {code}); {final} was left as it was")
                say(f"[{i}/{n}] {stage.name} FAILED (exit status {code})")
                return
            _publish(stage, partial, final)
            seconds[stage.name] = time.monotonic() - t0
            say(_finished(i, n, stage, seconds[stage.name], time.perf_counter() - start, final))

    order = sorted(stages, key=lambda s: -expected(s, quick))
    threads = [threading.Thread(target=one, args=(s,)) for s in order]
    try:
        with watch:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:  # an interrupt stops the experiment processes too
        for proc in running:
            if proc.poll() is None:
                proc.kill()
    return seconds, failures


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of every experiment process it waited for: with the wall
    time in ``run.json``, what a run cost on a machine shared with other work."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def tier_of(only, everything: bool) -> str:
    """``"report"``, ``"all"`` or ``"only"``: which stages a job runs (recorded in ``run.json``, said on the page)."""
    return "only" if only is not None else "all" if everything else "report"


def plan(tier: str, only=None, *, second: bool = False) -> list[Stage]:
    """The stages a job runs: the report tier's, all (``"all"``: with every second draw) or ``only`` these;
    ``second`` adds the second draw of each."""
    stages = [s for s in STAGES if (s.name in only if tier == "only" else tier == "all" or not s.extended)]
    return stages + [second_draw(s) for s in stages] if second or tier == "all" else stages


def build_parser():
    parser = _cli.Parser("reproduce", __doc__)
    parser.add_argument("--all", action="store_true", dest="everything",
                        help=f"add the extended studies ({', '.join(EXTENDED)}) to the report tier "
                             f"({', '.join(REPORT_TIER)})")
    parser.add_argument("--quick", action="store_true", help="reduced sizes: seconds, for a first look and CI")
    parser.add_argument("--out", type=Path, default=Path("runs"),
                        help="output folder (default: runs/); each experiment replaces only OUT/<name>")
    parser.add_argument("--only", nargs="+", choices=[s.name for s in STAGES], default=None,
                        help="run only these experiments (the page uses what is in OUT)")
    parser.add_argument("--second-draw", action="store_true",
                        help=f"run every experiment again with --seed-base {SECOND_BASE} into OUT/<name>.base"
                             f"{SECOND_BASE}, and set its verdicts beside the first draw's (--all implies it)")
    parser.add_argument("--force", action="store_true", help="run although --out holds files the job did not "
                        "write; they are kept, never deleted (a page file of the user's is still refused)")
    parser.add_argument("--jobs", type=_cli.number(int, min=1, max=64), default=None,
                        help="experiments run at once as their own processes (default: one per core); "
                             "1: one after the other in this process")
    return parser


def main(argv: list[str] | None = None) -> Path | int:
    args = build_parser().parse_args(argv)
    if args.only is not None and args.everything:
        raise _cli.UsageError("--only names the experiments to run; --all cannot be added to it")
    tier = tier_of(args.only, args.everything)
    if args.second_draw and args.everything:
        raise _cli.UsageError("--all already runs the second draw; drop --second-draw")
    stages = plan(tier, args.only, second=args.second_draw)
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
        return _run(args, stages, tier)


def _run(args, stages, tier: str) -> Path | int:
    from experiments.job import start

    start()  # one XLA host device per core, compile level and cache, before JAX starts; inherited by the stages
    from experiments.report import write_report

    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    jobs = min(args.jobs or os.cpu_count() or 1, len(stages))
    what = {"report": "the report tier", "all": "the report tier and the extended studies (--all)",
            "only": "the experiments named by --only"}[tier]
    print(f"reproduce: {what}{', quick mode' if args.quick else ''}: {len(stages)} "
          f"experiment{'s' if len(stages) != 1 else ''}, {jobs} at a time; took about "
          f"{clock(expected_total(stages, args.quick, jobs))} on the 2-core development machine with the compile "
          f"cache warm (compiling afresh adds to it)", flush=True)
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
        with _Watch(len(stages), args.quick) as watch:
            for stage in stages:
                i, t0 = watch.begin(stage), time.perf_counter()
                run_stage(stage, args.out, args.quick, heard=lambda name=stage.name: watch.heard(name))
                watch.end(stage.name)
                seconds[stage.name] = time.perf_counter() - t0
                watch.say(_finished(i, len(stages), stage, seconds[stage.name], time.perf_counter() - t_start,
                                    args.out / stage.name))
    from rnnjax.devices import environment
    from rnnjax.io import write_json

    total, cpu = time.perf_counter() - t_start, cpu_seconds()
    write_json(args.out / "run.json", {"quick": args.quick, "tier": tier, "stages": [s.name for s in stages],
                                       "jobs": jobs, "seconds": seconds, "total_seconds": total,
                                       "cpu_seconds": cpu, "environment": environment()})
    page = write_report(args.out, quick=args.quick, tier=tier)
    print(f"\nAll done in {clock(total)} wall, {clock(cpu)} of CPU ({jobs} at a time). Results page: {page}; "
          "check it (and the docs) with "
          f"python -m experiments.check_report {args.out}")
    return page


if __name__ == "__main__":
    _cli.run_as_command(main, "reproduce")
