"""Experiment 2 (report §5): ||dL/dW_hh|| during training for W_hh = rho W, and the report's Figure 3.

    python -m experiments.gradient_stability [--rhos 0.9 0.99 1.2] [--seeds 4] [--norm spec] [--out DIR]

Defaults are the report's run as docs/report_restated.md (§5 and "Decisions") reads it: "the quick
brown fox jumps over the lazy dog" x 200 (joined by spaces), one-hot characters (27 symbols),
non-overlapping segments of 50 with next-character targets; a vanilla RNN with 50 ReLU units,
W_hh = rho W, W ~ N(0, std 1/sqrt(50)) (``--recurrent-init spectral`` rescales W to spectral radius
exactly rho), W_xh ~ N(0, std 1/sqrt(27)), W_ho ~ N(0, std 1/sqrt(50)), zero biases; cross-entropy
summed over the 50 steps; plain SGD, lr 1e-4, 200 updates, update s on segment s mod 175, hidden
state reset to 0 per segment
(``--carry-state`` carries it over). Every (rho, seed) trains in ONE jitted, vmapped program.

Writes ``history.csv`` (rho, seed, step, loss, grad_whh_fro, grad_whh_spec; a run that went
non-finite stops at its last finite step), ``claims.csv`` (the report's claim beside the
measurement, per rho), ``fig3_grad_norm.png`` and, last, ``metrics.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import _cli
from experiments._progress import StageLog
from experiments.job import start
from rnnjax.data.text import SENTENCE

NORMS = {"spec": "grad_whh_spec", "fro": "grad_whh_fro"}
QUICK = dict(steps=12, seeds=2, repeats=12, hidden=16)


def build_parser() -> argparse.ArgumentParser:
    p = _cli.Parser("gradient_stability", __doc__)
    p.add_argument("--rhos", type=_cli.number(float, min=0, min_open=True, max=1e3), nargs="+", action=_cli.Distinct,
                   default=[0.90, 0.99, 1.20], help="default: 0.9 0.99 1.2")
    p.add_argument("--seeds", type=_cli.number(int, min=1, max=10_000), default=4,
                   help="initialisations per rho (default: 4, as in the main job)")
    _cli.add_seed_base(p)  # base B, N seeds: seeds B N .. B N + N - 1 (two bases share none)
    p.add_argument("--steps", type=_cli.number(int, min=1, max=10**7), default=200, help="SGD updates (default: 200)")
    p.add_argument("--lr", type=_cli.learning_rate, default=1e-4, help="learning rate (default: 1e-4)")
    p.add_argument("--hidden", type=_cli.positive_int, default=50, help="hidden units (default: 50)")
    p.add_argument("--activation", choices=("relu", "tanh", "sigmoid", "linear"), default="relu")
    p.add_argument("--recurrent-init", choices=("gaussian", "spectral"), default="gaussian",
                   help="gaussian: rho x N(0, std 1/sqrt(H)) (the report's N(0, 1/sqrt(h)) read as a standard "
                        "deviation, docs/report_restated.md); spectral: radius exactly rho")
    p.add_argument("--segment-length", type=_cli.number(int, min=2, max=100_000), default=50,
                   help="characters per segment (default: 50)")
    p.add_argument("--repeats", type=_cli.number(int, min=1, max=100_000), default=200,
                   help="copies of the sentence (default: 200)")
    p.add_argument("--carry-state", action="store_true", help="carry h across segments (default: reset)")
    p.add_argument("--norm", default="spec", choices=sorted(NORMS),
                   help="norm plotted and judged: spec (||.||_2, the report's notation) or fro (default: spec)")
    p.add_argument("--devices", type=_cli.number(int, min=1, max=1024), default=None,
                   help="host CPU devices (default: one per core)")
    p.add_argument("--out", type=Path, help="output folder, replaced as a whole when the run completes "
                   "(default: runs/gradient_stability-<date>-<time>/)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: {QUICK['steps']} steps, {QUICK['seeds']} seeds, H={QUICK['hidden']}, "
                        f"{QUICK['repeats']} sentence copies (defaults: a flag given explicitly wins)")
    _cli.add_force(p)
    return p


def _check(args) -> tuple[np.ndarray, np.ndarray, Path]:
    """Every check before any work; returns ``(rhos, seeds, out)`` or raises a UsageError."""
    rhos = np.asarray(args.rhos, float)
    _cli.check_seed_base(args.seed, args.seeds)
    if args.repeats * (len(SENTENCE) + 1) - 1 < args.segment_length + 1:
        raise _cli.UsageError(f"--repeats {args.repeats} copies of the sentence make no full segment of "
                              f"--segment-length {args.segment_length}; raise --repeats")
    runs = len(rhos) * args.seeds
    _cli.check_memory(4.0 * runs * (12 * args.hidden**2 + 8 * args.segment_length * args.hidden + 6 * args.steps),
                      f"--hidden {args.hidden} with {runs} runs ({len(rhos)} rhos x {args.seeds} seeds)",
                      "use a smaller --hidden or fewer --seeds/--rhos")
    out = _cli.check_out(args.out or _cli.default_out("gradient_stability"), experiment="gradient_stability",
                         force=args.force)
    return rhos, np.arange(args.seed * args.seeds, (args.seed + 1) * args.seeds), out


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        _cli.apply_quick(parser, argv, args, QUICK)
    rhos, seeds, final = _check(args)
    with _cli.atomic_folder(final, "gradient_stability", force=args.force) as out:
        metrics, files = _run(args, rhos, seeds, out)
    print(f"[gradient_stability] wrote {final}/: {', '.join(files)}; {metrics['claims_agree']} of "
          f"{metrics['claims_total']} report claims agree", flush=True)
    return metrics


def _run(args, rhos, seeds, out: Path):
    start(args.devices)  # before JAX starts its backend: one CPU device per core, compile settings and cache
    import jax  # noqa: F401  (the backend starts below, with the host devices set)

    from experiments.claims import REPORT_CLAIMS, judge_claim
    from rnnjax.data.text import fox_segments
    from rnnjax.io import finite_stat, write_csv, write_json
    from rnnjax.plots.gradients import plot_grad_norm_history
    from rnnjax.sweeps import curve_summary, stability_sweep, train_sweep
    from rnnjax.train import first_nonfinite_step

    say = StageLog("gradient_stability")
    data = fox_segments(args.repeats, args.segment_length)
    say(f"data: {data.inputs.shape[0]} segments of {args.segment_length}, vocabulary {len(data.vocab)}; "
        f"{len(jax.devices())} device{'s' if len(jax.devices()) != 1 else ''}")
    # spec_norm="svd": the page reports ||dL/dW_hh||_2 itself, so it is the exact SVD here (12 runs: it costs
    # ~0.3 s); the library's default, warm-started Lanczos, is for large sweeps (benchmarks/bench_sweeps.py)
    config = dict(hidden_size=args.hidden, loss="xent", num_steps=args.steps, learning_rate=args.lr,
                  activation=args.activation, recurrent_init=args.recurrent_init, carry_state=args.carry_state,
                  spec_norm="svd")
    _, hist = train_sweep(rhos, seeds, data.inputs, data.targets, fast_compile=args.quick, **config)
    hist = jax.tree.map(np.asarray, hist)
    say(f"trained {len(rhos)} rho x {len(seeds)} seeds x {args.steps} steps in one vmapped program")

    # history.csv: every finite step of every run (a diverged run stops at its last finite step)
    bad = np.asarray(first_nonfinite_step(hist))  # (R, S), -1 = finite throughout
    rows = []
    for i, rho in enumerate(rhos):
        for j, seed in enumerate(seeds):
            n = args.steps if bad[i, j] < 0 else int(bad[i, j])
            rows.append(pd.DataFrame({"rho": rho, "seed": int(seed), "step": np.arange(n),
                                      "loss": hist.loss[i, j, :n], "grad_whh_fro": hist.grad_whh_fro[i, j, :n],
                                      "grad_whh_spec": hist.grad_whh_spec[i, j, :n]}))
    write_csv(out / "history.csv", pd.concat(rows, ignore_index=True))

    # per rho: the plotted norm's median curve, its summary, non-finite runs, and the report's claim
    n_lyap = 200 if args.quick else 1000  # characters for the stability measures at initialisation
    stab = stability_sweep(rhos, seeds, data.inputs.reshape(-1, data.inputs.shape[-1])[:n_lyap],
                           data.targets.reshape(-1)[:n_lyap], hidden_size=args.hidden, output_size=len(data.vocab),
                           activation=args.activation, recurrent_init=args.recurrent_init, fast_compile=args.quick)
    gamma = {"relu": 1.0, "tanh": 1.0, "sigmoid": 0.25, "linear": 1.0}[args.activation]
    floor = float(np.log(np.finfo(np.float32).tiny)) + 1e-3  # log of float32's smallest normal: no measurement
    at_floor = np.asarray(stab["lyap_top"]) <= floor  # a growth rate at (or below) it is the float's, not the RNN's
    stab["lyap_top"] = np.where(at_floor, np.nan, stab["lyap_top"])
    per_rho, curves, claims = [], {}, []
    for i, rho in enumerate(rhos):
        values = getattr(hist, NORMS[args.norm])[i]
        s = curve_summary(values, hist.finite[i])
        diverged = [{"seed": int(seeds[j]), "first_nonfinite_step": int(bad[i, j])}
                    for j in range(len(seeds)) if bad[i, j] >= 0]
        note = None
        if diverged:
            note = (f"{len(diverged)}/{len(seeds)} seeds non-finite from step "
                    f"{min(d['first_nonfinite_step'] for d in diverged)}")
            say(f"rho {rho:g}: training went non-finite: "
                + ", ".join(f"seed {d['seed']} at step {d['first_nonfinite_step']}" for d in diverged))
        curves[float(rho)] = {"steps": s["steps"], "median": s["median"], "low": s["low"], "high": s["high"],
                              "seeds": len(seeds), "diverged": note}
        init = {k: finite_stat(v[i]) for k, v in stab.items()}  # medians over seeds (one length), None if none finite
        last_step = {j: (args.steps if bad[i, j] < 0 else int(bad[i, j])) - 1  # each seed's last finite step
                     for j in range(len(seeds)) if bad[i, j] != 0}
        last = [hist.loss[i, j, t] for j, t in last_step.items()]
        exp = lambda v: None if v is None else float(np.exp(v))
        per_seed_end = [values[j, t] for j, t in last_step.items()]
        entry = {"rho": float(rho), "status": "finite" if not diverged else "non-finite runs", "diverged": diverged,
                 "norm": args.norm,
                 **{k: s[k] for k in ("start", "end", "min", "max", "decades", "change_decades", "trend")},
                 "start_per_seed": [float(v) for v in values[:, 0] if np.isfinite(v)],  # step 0, every seed
                 "end_per_seed": [float(v) for v in per_seed_end],  # each seed's last finite step
                 "start_seed_min": finite_stat(values[:, 0], np.min),
                 "start_seed_max": finite_stat(values[:, 0], np.max),
                 "end_seed_min": finite_stat(per_seed_end, np.min), "end_seed_max": finite_stat(per_seed_end, np.max),
                 "loss_start_median": finite_stat(hist.loss[i, :, 0]),
                 "loss_last_finite_median": finite_stat(last),
                 "init_W_hh_norm2_median": exp(init["log_norm"]),
                 "init_spectral_radius_median": exp(init["log_radius"]),
                 "init_gamma_norm2_median": None if init["log_norm"] is None else gamma * exp(init["log_norm"]),
                 "init_top_lyapunov_median": init["lyap_top"],
                 "init_top_lyapunov_at_float32_floor": int(at_floor[i].sum()),  # seeds whose exponent is the floor
                 "init_lag_slope_median": init["lag_slope"]}
        per_rho.append(entry)
        if any(abs(rho - r) < 1e-9 for r in REPORT_CLAIMS):
            claims.append(judge_claim(float(rho), s))
    for c in claims:  # the measurement, then the test the claim was turned into, then whether it passed
        say(f"rho {c['rho']:.2f}  REPORT:   {c['claim']}\n{'':>24}MEASURED: {c['measured']}\n"
            f"{'':>24}TEST:     {c['test'] or 'none'} -> {'met' if c['verdict'] == 'agrees' else 'not met'}"
            f"\n{'':>24}VERDICT:  the claim {c['verdict']} with the measurement")
    files = ["history.csv"]
    if claims:
        write_csv(out / "claims.csv", pd.DataFrame(claims))
        files.append("claims.csv")
    else:
        say(f"no rho is one of the report's ({', '.join(f'{r:g}' for r in REPORT_CLAIMS)}): no claims to judge, "
            "no claims.csv")

    fig = out / "fig3_grad_norm.png"
    plot_grad_norm_history(curves, norm=args.norm, path=fig,
                           title=f"||dL/dW_hh|| per SGD step, {args.activation} H={args.hidden}, "
                                 f"{args.recurrent_init} init (median, min-max band)")
    metrics = {
        "experiment": "gradient_stability",
        "config": {**{k: v for k, v in config.items()}, "rhos": [float(r) for r in rhos],
                   "seeds": [int(s) for s in seeds], "segment_length": args.segment_length,
                   "segments": int(data.inputs.shape[0]), "vocabulary": "".join(data.vocab),
                   "repeats": args.repeats, "norm": args.norm, "quick": args.quick, "stability_chars": n_lyap,
                   "devices": len(jax.devices())},
        "per_rho": per_rho,
        "claims": claims,
        "claims_agree": sum(c["verdict"] == "agrees" for c in claims),
        "claims_total": len(claims),
        # issue 19: each claim as a Verdict (id stable across --seed-base); a check of the median curve, no p-value
        "verdicts": [{"id": f"claim:{c['rho']:g}", "claim": f"rho {c['rho']:g}: {c['claim']}",
                      "test": c["test"] or "none (no finite step)", "evidence": c["measured"], "p": None,
                      "verdict": c["verdict"]} for c in claims],
        "wall_s": say.elapsed(),
        "figures": [fig.name],
    }
    write_json(out / "metrics.json", metrics)
    return metrics, files + [fig.name, "metrics.json"]


if __name__ == "__main__":
    _cli.run_as_command(main, "gradient_stability")
