"""The main job: run every experiment on the embedded data, then write the results page.

    python -m experiments.reproduce [--quick] [--out runs/]

Each experiment runs into a hidden temporary folder that replaces ``OUT/<name>/`` only once the
experiment has finished, so an interrupted run never leaves a half-written result that the page
would read as complete. The page, ``OUT/report.md``, is then built from the JSON files alone.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import time
from pathlib import Path
from typing import NamedTuple


class Stage(NamedTuple):
    name: str  # module under experiments/ and folder under OUT/
    title: str
    args: tuple[str, ...]  # extra arguments of the full run (defaults are the report's settings)
    quick_args: tuple[str, ...]  # extra arguments of --quick


STAGES = (
    Stage("stock_forecast", "Experiment 1: next-day stock price (report §3)", ("--seeds", "4"), ("--quick",)),
    Stage("gradient_stability", "Experiment 2: gradient norm vs spectral radius (report §5)", ("--seeds", "4"),
          ("--quick",)),
    Stage("gradient_spectra", "Lag profiles, Jacobian spectra, Lyapunov exponents, phase diagram", (), ("--quick",)),
    Stage("remedies", "Remedies: clipping, LSTM/GRU, IRNN, the adding problem", (), ("--quick",)),
)


def run_stage(stage: Stage, out: Path, quick: bool) -> dict:
    """Run one experiment into ``out/.<name>.partial`` and move it to ``out/<name>`` when complete."""
    final, partial = out / stage.name, out / f".{stage.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    module = importlib.import_module(f"experiments.{stage.name}")
    metrics = module.main([*(stage.quick_args if quick else stage.args), "--out", str(partial)])
    old = out / f".{stage.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    partial.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return metrics


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m experiments.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced sizes: seconds, for a first look and CI")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="output folder (default: runs/)")
    parser.add_argument("--only", nargs="*", choices=[s.name for s in STAGES], default=None,
                        help="run only these experiments (the page uses what is in OUT)")
    args = parser.parse_args(argv)
    from rnnjax.devices import use_host_devices

    use_host_devices()  # one XLA host device per core, before JAX starts (the sweeps shard over them)
    from experiments.report import write_report

    args.out.mkdir(parents=True, exist_ok=True)
    stages = [s for s in STAGES if args.only is None or s.name in args.only]
    start = time.perf_counter()
    mode = "quick" if args.quick else "full"
    for i, stage in enumerate(stages, 1):
        print(f"\n[{i}/{len(stages)}] {stage.name}: {stage.title} ({mode})", flush=True)
        t0 = time.perf_counter()
        run_stage(stage, args.out, args.quick)
        print(f"[{i}/{len(stages)}] {stage.name} done in {time.perf_counter() - t0:.1f} s "
              f"(elapsed {time.perf_counter() - start:.1f} s)", flush=True)
    page = write_report(args.out, quick=args.quick)
    print(f"\nAll done in {time.perf_counter() - start:.1f} s. Results page: {page}")
    return page


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
