"""Experiment 1's variants: the report's own fixes (log-returns, a loss at every step, Adam) and gated cells.

    python -m experiments.stock_variants [--seeds 4] [--quick] [--out DIR]

Runs ``python -m experiments.stock_forecast --seeds N <flags>`` for every variant below into
``OUT/<name>/`` (each with its tables, figures and ``metrics.json``), then writes ``OUT/metrics.json``:
per variant its flags, test RMSE/MAE with their spread over seeds, persistence on the same days,
the Diebold-Mariano summary (fixed-b, the verdict's test; Newey-West beside it with its simulated size) and the
verdict against persistence, and the train RMSE; ``verdicts`` holds one :class:`experiments.schemas.Verdict` per
variant (id ``variant:<name>_vs_persistence``). The report's
own setup is Experiment 1 itself (``python -m experiments.stock_forecast``), not repeated here.
``--quick`` runs one variant for 20 epochs (a smoke test of the whole path).
"""

from __future__ import annotations

from pathlib import Path

from experiments import _cli
from experiments._progress import StageLog
from experiments.job import start

VARIANTS = (  # (name, what it changes, flags)
    ("returns", "next log-return", ("--target", "returns")),
    ("many_to_many", "loss at every step", ("--loss", "many-to-many")),
    ("adam", "Adam", ("--optimizer", "adam")),
    ("many_to_many_adam", "many-to-many + Adam", ("--loss", "many-to-many", "--optimizer", "adam")),
    ("returns_adam", "log-return + Adam", ("--target", "returns", "--optimizer", "adam")),
    ("returns_many_to_many_adam", "log-return + many-to-many + Adam",
     ("--target", "returns", "--loss", "many-to-many", "--optimizer", "adam")),
    ("lstm", "LSTM", ("--cell", "lstm")),
    ("gru", "GRU", ("--cell", "gru")),
)
QUICK_VARIANTS = ("returns_adam",)
KEYS = ("rmse", "rmse_min", "rmse_max", "mae", "mae_min", "mae_max", "persistence_rmse", "persistence_mae",
        "seeds_beating_persistence", "dm_vs_persistence", "verdict_vs_persistence", "train_rmse",
        "train_persistence_rmse")


def build_parser():
    p = _cli.Parser("stock_variants", __doc__)
    p.add_argument("--seeds", type=_cli.number(int, min=1, max=10_000), default=4,
                   help="initialisations per variant (default: 4)")
    _cli.add_seed_base(p)  # passed on to every variant's stock_forecast run
    p.add_argument("--out", type=Path, help="output folder, replaced as a whole when the run completes "
                   "(default: runs/stock_variants-<date>-<time>/)")
    p.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_VARIANTS)}, 20 epochs each")
    _cli.add_force(p)
    return p


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    start(host_devices=False)  # before JAX starts its backend: compile settings and cache
    final = _cli.check_out(args.out or _cli.default_out("stock_variants"), experiment="stock_variants",
                           force=args.force)
    with _cli.atomic_folder(final, "stock_variants", force=args.force) as out:
        metrics = _run(args, out)
    print(f"[stock_variants] done: {final}/ ({len(metrics['variants'])} variants)", flush=True)
    return metrics


def _run(args, out: Path) -> dict:
    from experiments import stock_forecast
    from rnnjax.io import write_json

    say = StageLog("stock_variants")
    variants, verdicts = {}, []
    for name, label, flags in VARIANTS:
        if args.quick and name not in QUICK_VARIANTS:
            continue
        say(f"{name}: {' '.join(flags)}")
        m = stock_forecast.main([*flags, "--seeds", str(args.seeds), "--seed-base", str(args.seed),
                                 *(["--quick"] if args.quick else []),
                                 "--out", str(out / name)])
        variants[name] = {"label": label, "flags": " ".join(flags), **{k: m[k] for k in KEYS},
                          "seeds": m["seeds"]["count"], "epochs": m["config"]["epochs"]}
        verdicts.append(stock_forecast.verdict_record(m, f"variant:{name}_vs_persistence",
                                                      f"{label} ({' '.join(flags)}): the RNN's next-day close "
                                                      "differs in squared-error accuracy from persistence's"))
    metrics = {"experiment": "stock_variants",
               "config": {"seeds": args.seeds, "seed_base": args.seed, "quick": args.quick},
               "variants": variants, "verdicts": verdicts, "wall_s": say.elapsed()}
    write_json(out / "metrics.json", metrics)
    return metrics


if __name__ == "__main__":
    _cli.run_as_command(main, "stock_variants")
