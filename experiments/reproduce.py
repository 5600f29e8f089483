"""The main job: run every experiment on the embedded data, then write the results page.

    python -m experiments.reproduce [--quick] [--out runs/] [--only NAME ...]

Each experiment runs into a hidden temporary folder that replaces ``OUT/<name>/`` only once the
experiment has finished, so an interrupted run never leaves a half-written result that the page
would read as complete. The page, ``OUT/report.md``, is then built from the JSON files alone.
The job replaces only folders it wrote (marked ``.made-by-reproduce``); a standalone experiment's
default folder is ``runs/<name>-<date>-<time>``, so the two never meet.
"""

from __future__ import annotations

import importlib
import shutil
import time
from pathlib import Path
from typing import NamedTuple

from experiments import _cli


class Stage(NamedTuple):
    name: str  # module under experiments/ and folder under OUT/
    title: str
    args: tuple[str, ...]  # extra arguments of the full run (defaults are the report's settings)
    quick_args: tuple[str, ...]  # extra arguments of --quick


STAGES = (
    Stage("stock_forecast", "Experiment 1: next-day stock price (report §3)", ("--seeds", "4"), ("--quick",)),
    Stage("stock_variants", "Experiment 1's variants: log-returns, a loss at every step, Adam, LSTM, GRU",
          ("--seeds", "4"), ("--quick", "--seeds", "2")),
    Stage("gradient_stability", "Experiment 2: gradient norm vs spectral radius (report §5)", ("--seeds", "4"),
          ("--quick",)),
    Stage("gradient_spectra", "Lag profiles, Jacobian spectra, Lyapunov exponents, phase diagram", (), ("--quick",)),
    Stage("remedies", "Remedies: clipping, LSTM/GRU, IRNN, the adding problem", (), ("--quick",)),
    Stage("flossing", "Gradient flossing on the delayed recall of one bit (Engelken 2023)", (), ("--quick",)),
)


MARK = ".made-by-reproduce"  # in every OUT/<name> this job wrote: the only folders it will ever replace


def foreign_folders(out: Path, stages) -> list[Path]:
    """``OUT/<name>`` folders of ``stages`` that this job did not write (no :data:`MARK`): never replaced."""
    return [out / s.name for s in stages if (out / s.name).exists() and not (out / s.name / MARK).is_file()]


def run_stage(stage: Stage, out: Path, quick: bool) -> dict:
    """Run one experiment into ``out/.<name>.partial`` and move it to ``out/<name>`` when complete.

    If the experiment raises, ``out/<name>`` keeps the previous results. The folder is marked as
    this job's (:data:`MARK`); a folder without the mark is refused, never replaced.
    """
    final, partial = out / stage.name, out / f".{stage.name}.partial"
    if final.exists() and not (final / MARK).is_file():
        raise _cli.UsageError(f"{final} was not written by the main job; move it away or choose another --out")
    shutil.rmtree(partial, ignore_errors=True)  # a killed run's leftover (a hidden name of our own)
    module = importlib.import_module(f"experiments.{stage.name}")
    metrics = module.main([*(stage.quick_args if quick else stage.args), "--out", str(partial)])
    (partial / MARK).write_text(f"written by python -m experiments.reproduce ({stage.name})\n")
    _cli.replace_folder(partial, final)
    return metrics


def build_parser():
    parser = _cli.Parser("reproduce", __doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes: seconds, for a first look and CI")
    parser.add_argument("--out", type=Path, default=Path("runs"),
                        help="output folder (default: runs/); each experiment replaces only OUT/<name>")
    parser.add_argument("--only", nargs="+", choices=[s.name for s in STAGES], default=None,
                        help="run only these experiments (the page uses what is in OUT)")
    return parser


def main(argv: list[str] | None = None) -> Path:
    args = build_parser().parse_args(argv)
    stages = [s for s in STAGES if args.only is None or s.name in args.only]
    if args.out.exists() and not args.out.is_dir():
        raise _cli.UsageError(f"--out {args.out} is a file, not a folder")
    _cli.check_writable(args.out)
    foreign = foreign_folders(args.out, stages)
    if foreign:
        raise _cli.UsageError(f"{', '.join(map(str, foreign))} {'was' if len(foreign) == 1 else 'were'} not written "
                              f"by the main job, which replaces only its own folders; move "
                              f"{'it' if len(foreign) == 1 else 'them'} away or choose another --out")
    from rnnjax.devices import use_host_devices

    use_host_devices()  # one XLA host device per core, before JAX starts (the sweeps shard over them)
    from experiments.report import write_report

    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    mode = "quick" if args.quick else "full"
    seconds = {}
    for i, stage in enumerate(stages, 1):
        print(f"\n[{i}/{len(stages)}] {stage.name}: {stage.title} ({mode})", flush=True)
        t0 = time.perf_counter()
        run_stage(stage, args.out, args.quick)
        seconds[stage.name] = time.perf_counter() - t0
        print(f"[{i}/{len(stages)}] {stage.name} done in {seconds[stage.name]:.1f} s "
              f"(elapsed {time.perf_counter() - start:.1f} s); moved into place: {args.out / stage.name}/",
              flush=True)
    from rnnjax.io import write_json

    write_json(args.out / "run.json", {"quick": args.quick, "stages": [s.name for s in stages],
                                       "seconds": seconds, "total_seconds": time.perf_counter() - start})
    page = write_report(args.out, quick=args.quick)
    print(f"\nAll done in {time.perf_counter() - start:.1f} s. Results page: {page}; check it (and the docs) with "
          f"python -m experiments.check_report {args.out}")
    return page


if __name__ == "__main__":
    _cli.run_as_command(main, "reproduce")
