"""Size of the Diebold-Mariano tests under the null (issue 19): the Newey-West HAC test against fixed-b.

    python benchmarks/size_simulation.py [--phis 0,0.5,0.9,0.95,0.99] [--n 1597] [--reps 2000] [--seed 0]
                                         [--b 1] [--json FILE] [--package-data]
    python benchmarks/size_simulation.py --write-table [--draws 100000] [--grid 1000] [--seed 0]

For each phi, ``--reps`` AR(1) loss differentials d_t = phi d_{t-1} + e_t of length ``--n`` (mean 0: the null of
equal accuracy holds), each tested at 5% by :func:`rnnjax.stats.dm_test` (Newey-West lag, HLN factor, t(n - 1))
and :func:`rnnjax.stats.dm_fixed_b` (Bartlett, bandwidth b n, Kiefer-Vogelsang critical value); the table gives
each test's rejection rate with its Clopper-Pearson 95% interval, and writes it as JSON (atomically).
``--package-data`` also writes it to ``src/rnnjax/data/dm_size.json`` (:data:`PACKAGE_DATA`): the table
Experiment 1 labels its Newey-West p-values with and the docs render (``stock_forecast.size`` block).

``--write-table`` instead simulates the fixed-b limit (``--draws`` discretised Wiener paths of ``--grid`` steps)
and writes the |t| quantile table that :func:`rnnjax.stats.fixed_b_p_value` reads
(``src/rnnjax/data/fixed_b_bartlett.npz``): b = 0.02, 0.04, ..., 1 and 201 tail probabilities from 1e-4 to 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rnnjax import stats

TABLE_PATH = Path(__file__).resolve().parents[1] / "src" / "rnnjax" / "data" / stats.FIXED_B_TABLE
PACKAGE_DATA = TABLE_PATH.with_name("dm_size.json")  # read by experiments.stock_forecast.size_table


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def write_table(draws: int, grid: int, seed: int) -> dict:
    bs = np.round(np.arange(1, 51) * 0.02, 2)
    p = np.geomspace(1e-4, 1.0, 201)
    t0 = time.perf_counter()
    q = stats.simulate_fixed_b_quantiles(bs, p, draws=draws, grid=grid, seed=seed)
    wall = time.perf_counter() - t0
    _atomic_write(TABLE_PATH, lambda f: np.savez(f, b=bs, tail_prob=p, quantile=q, draws=draws, grid=grid,
                                                 seed=seed))
    return {"path": str(TABLE_PATH), "draws": draws, "grid": grid, "seed": seed, "wall_s": round(wall, 1)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phis", type=_floats, default=[0.0, 0.5, 0.9, 0.95, 0.99])
    p.add_argument("--n", type=int, default=1597)
    p.add_argument("--reps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--b", type=float, default=1.0)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--package-data", action="store_true", help=f"also write the table to {PACKAGE_DATA}")
    p.add_argument("--write-table", action="store_true")
    p.add_argument("--draws", type=int, default=100_000)
    p.add_argument("--grid", type=int, default=1000)
    a = p.parse_args(argv)
    if a.write_table:
        if a.draws < 10_000 or a.grid < 100:
            p.error(f"--draws must be >= 10000 and --grid >= 100, got {a.draws}, {a.grid}")
        out = write_table(a.draws, a.grid, a.seed)
        print(json.dumps(out))
        return out
    if a.reps < 1 or a.n < 2 or not 0.02 <= a.b <= 1 or any(not -1 < phi < 1 for phi in a.phis):
        p.error("need --reps >= 1, --n >= 2, --b in [0.02, 1] and every phi in (-1, 1)")
    t0 = time.perf_counter()
    rows = stats.dm_size_table(a.phis, a.n, a.reps, a.seed, b=a.b)
    wall = time.perf_counter() - t0
    print(f"Rejection rate at 5% of a true null, AR(1) loss differential, n = {a.n}, {a.reps} replications per phi")
    print(f"{'phi':>5}  {'Newey-West DM (95% CI)':<24}  {'NW median lag':>13}  fixed-b DM, b = {a.b:g} (95% CI)")
    for r in rows:
        nw = f"{r.nw_rate:.1%} ({r.nw_ci[0]:.1%}-{r.nw_ci[1]:.1%})"
        fb = f"{r.fixed_b_rate:.1%} ({r.fixed_b_ci[0]:.1%}-{r.fixed_b_ci[1]:.1%})"
        print(f"{r.phi:>5g}  {nw:<24}  {r.nw_median_lag:>13.0f}  {fb}")
    out = {"command": "python benchmarks/size_simulation.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": _cpu(),
           "load_average": list(os.getloadavg()), "wall_s": round(wall, 1), "n": a.n, "reps": a.reps,
           "seed": a.seed, "b": a.b, "rows": [r._asdict() for r in rows]}
    for path in [a.json] + ([PACKAGE_DATA] if a.package_data else []):
        if path is not None:
            _atomic_write(path, lambda f: f.write(json.dumps(out, indent=1).encode()))
    return out


if __name__ == "__main__":
    main()
