"""What the report's §4.1 only sketches: lag profiles, Jacobian-product spectra, Lyapunov exponents
and a rho phase diagram, for Experiment 2's network at initialisation.

    python -m experiments.gradient_spectra [--rhos 0.9 0.99 1.2] [--seeds 4] [--grid 64] [--out DIR]

* Lag profiles (``fig4_lag_profile.png``, ``lag_profile.csv``): for each rho, the geometric mean
  over seeds and ``--segments`` text segments of ||dL_T/dh_{T-k}|| / ||dL_T/dh_T|| (L_T the last
  step's cross-entropy, state reset per segment) for k = 0..49, beside the report's bound
  (gamma ||W_hh||_2)^k, the largest singular value of J_T ... J_{T-k+1}, and e^{lambda_1 k}.
* Spectra (``fig5_jacobian_spectra.png``, ``spectra.csv``, ``lyapunov.csv``): all 50 singular
  values of the products against k, and the full Lyapunov spectrum (QR method, ``--lyap-length``
  characters after a warm-up of a tenth of them).
* Phase diagram (``fig6_phase_diagram.png``, ``phase.csv``): ``--grid`` values of rho in
  [``--rho-min``, ``--rho-max``] x seeds x ``--lengths``, for tanh and ReLU: the top Lyapunov
  exponent and the lag-profile slope (nats/step) beside log(gamma ||W_hh||_2) and the log spectral
  radius; the zero crossings say where vanishing turns into exploding. Each (activation, length)
  is one vmapped program sharded over every host device.

Network as Experiment 2: 27 one-hot characters, H = 50, W_hh = rho W (W ~ N(0, 1/sqrt(H)) std,
or ``--recurrent-init spectral``), LeCun-normal input/output weights. ``metrics.json`` is written last.
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

REPORT_RHOS = (0.90, 0.99, 1.20)
SAMPLE_RHOS = (0.5, 1.0, 1.5, 2.0)  # phase-diagram points quoted in docs/gradient_analysis.md
QUICK = dict(seeds=2, segments=2, grid=8, lengths=[20, 50], lyap_length=200, hidden=16)


POPULATION_DRAWS = 1000  # W_hh draws for the population median of the spectral radius over rho (issue 19)


def radius_draws(seeds, hidden: int, recurrent_init: str, *, draws: int = POPULATION_DRAWS,
                 resamples: int = 10_000) -> dict:
    """The spectral radii over rho of the seeds' own W_hh beside the population of ``draws`` other W_hh.

    The seeds' matrices are ``init_rnn``'s (rho = 1: W_hh = rho W); the population uses the same
    :func:`rnnjax.init_recurrent` with keys fold_in(PRNGKey(2**31 - 1), i), disjoint from every seed.
    ``p_reach`` is the Monte-Carlo probability (``resamples`` medians of len(seeds) population draws)
    that a median of that many draws reaches the seeds' median; ``p`` the two-sided p-value.
    """
    import jax

    from rnnjax.cells import init_recurrent, init_rnn

    own = np.stack([np.asarray(init_rnn(jax.random.PRNGKey(int(s)), 1, hidden, 1, rho=1.0,
                                        recurrent_init=recurrent_init).W_hh) for s in seeds])
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(2**31 - 1), i))(np.arange(draws))
    pop = np.asarray(jax.vmap(lambda k: init_recurrent(k, hidden, rho=1.0, kind=recurrent_init))(keys))
    radius = lambda W: np.abs(np.linalg.eigvals(W.astype(np.float64))).max(-1)  # max |lambda(W)|
    r_own, r_pop = radius(own), radius(pop)
    med = float(np.median(r_own))
    meds = np.median(np.random.default_rng(0).choice(r_pop, (resamples, len(r_own))), -1)  # medians of n draws
    up, down = float(np.mean(meds >= med)), float(np.mean(meds <= med))
    return {"per_seed": r_own.tolist(), "median": med, "population_median": float(np.median(r_pop)),
            "population_draws": draws, "p_reach": up, "p": min(1.0, 2 * min(up, down)), "seeds": len(r_own)}


def _about(rho) -> str:
    """``~ 1.23`` for a crossing found inside the grid, else says there was none."""
    return "(no crossing inside the grid)" if rho is None else f"~ {rho:.3f}"


def build_parser() -> argparse.ArgumentParser:
    p = _cli.Parser("gradient_spectra", __doc__)
    rho = _cli.number(float, min=0, min_open=True, max=1e3)
    p.add_argument("--rhos", type=rho, nargs="+", action=_cli.Distinct, default=list(REPORT_RHOS),
                   help="rhos for the lag profiles and spectra (default: the report's 0.9 0.99 1.2)")
    p.add_argument("--activation", choices=("relu", "tanh", "sigmoid", "linear"), default="relu",
                   help="cell of the lag profiles and spectra (default: relu, as Experiment 2)")
    p.add_argument("--seeds", type=_cli.number(int, min=1, max=10_000), default=4,
                   help="initialisations per rho (default: 4)")
    _cli.add_seed_base(p)  # base B, N seeds: seeds B N .. B N + N - 1 (two bases share none)
    p.add_argument("--segments", type=_cli.positive_int, default=16,
                   help="text segments averaged per seed (default: 16)")
    p.add_argument("--segment-length", type=_cli.number(int, min=2, max=100_000), default=50, help="default: 50")
    p.add_argument("--hidden", type=_cli.positive_int, default=50, help="hidden units (default: 50)")
    p.add_argument("--recurrent-init", choices=("gaussian", "spectral"), default="gaussian")
    p.add_argument("--lyap-length", type=_cli.number(int, min=2), default=2000,
                   help="characters for the Lyapunov spectra (default: 2000)")
    p.add_argument("--grid", type=_cli.number(int, min=2, max=100_000), default=64,
                   help="rho values in the phase diagram (default: 64)")
    p.add_argument("--rho-min", type=rho, default=0.5, help="default: 0.5")
    p.add_argument("--rho-max", type=rho, default=2.0, help="default: 2.0")
    p.add_argument("--lengths", type=_cli.number(int, min=2), nargs="+", action=_cli.Distinct, default=[20, 50, 200],
                   help="sequence lengths of the phase diagram (default: 20 50 200)")
    p.add_argument("--devices", type=_cli.number(int, min=1, max=1024), default=None,
                   help="host CPU devices (default: one per core)")
    p.add_argument("--out", type=Path, help="output folder, replaced as a whole when the run completes "
                   "(default: runs/gradient_spectra-<date>-<time>/)")
    flag = lambda k, v: f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
    p.add_argument("--quick", action="store_true",
                   help="smoke test: " + ", ".join(flag(k, v) for k, v in QUICK.items())
                   + " (defaults: a flag given explicitly wins)")
    _cli.add_force(p)
    return p


def _check(args) -> Path:
    """Every check before any work (sizes against the text, memory, the output folder); returns ``out``."""
    _cli.check_seed_base(args.seed, args.seeds)
    if not args.rho_min < args.rho_max:
        raise _cli.UsageError(f"--rho-min {args.rho_min:g} must be below --rho-max {args.rho_max:g}")
    chars = 200 * (len(SENTENCE) + 1) - 1  # the text: 200 copies of the sentence joined by spaces
    segments = chars // args.segment_length
    usable = segments * args.segment_length
    if segments < 1:
        raise _cli.UsageError(f"--segment-length {args.segment_length} is longer than the text ({chars} characters); "
                              f"use at most {chars}")
    for flag, value in (("--lengths", max(args.lengths)), ("--lyap-length", args.lyap_length)):
        if value > usable:
            raise _cli.UsageError(f"{flag} {value} is longer than the text ({usable} characters); use at most {usable}")
    if args.segments > segments:
        raise _cli.UsageError(f"--segments {args.segments}: the text has only {segments} segments of "
                              f"{args.segment_length}; use at most {segments}")
    runs = args.seeds * max(len(args.rhos), args.grid)
    _cli.check_memory(4.0 * runs * args.hidden**2 * (args.segment_length + max(args.lengths) + 8),
                      f"--hidden {args.hidden} with {runs} runs of Jacobian products",
                      "use a smaller --hidden, --grid or fewer --seeds")
    return _cli.check_out(args.out or _cli.default_out("gradient_spectra"), experiment="gradient_spectra",
                          force=args.force)


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        _cli.apply_quick(parser, argv, args, QUICK)
    final = _check(args)
    with _cli.atomic_folder(final, "gradient_spectra", force=args.force) as out:
        metrics = _run(args, out)
    print(f"[gradient_spectra] wrote {final}/: lag_profile.csv, spectra.csv, lyapunov.csv, phase.csv, "
          f"{', '.join(metrics['figures'])}, metrics.json", flush=True)
    return metrics


def _run(args, out: Path) -> dict:
    start(args.devices)  # before JAX starts its backend: one CPU device per core, compile settings and cache
    import jax

    from rnnjax.activations import get_activation
    from rnnjax.data.text import fox_segments
    from rnnjax.io import finite_stat, write_csv, write_json
    from rnnjax.plots.gradients import plot_jacobian_spectra, plot_lag_profiles, plot_phase_diagram
    from rnnjax.sweeps import lag_spectra_sweep, lyapunov_sweep, stability_sweep, zero_crossing

    say = StageLog("gradient_spectra")
    rhos = np.asarray(args.rhos, float)
    seeds = np.arange(args.seed * args.seeds, (args.seed + 1) * args.seeds)

    data = fox_segments(200, args.segment_length)
    V = len(data.vocab)
    chars_x = data.inputs.reshape(-1, V)  # the text as one long sequence (T_total, V)
    chars_y = data.targets.reshape(-1)
    net = dict(hidden_size=args.hidden, output_size=V, recurrent_init=args.recurrent_init, fast_compile=args.quick)
    gamma = get_activation(args.activation).gamma
    n_dev = len(jax.devices())
    say(f"{n_dev} device{'s' if n_dev != 1 else ''}; rho {', '.join(f'{r:g}' for r in rhos)}; "
        f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}, H = {args.hidden}")

    # 1. lag profiles and product spectra at the chosen rhos
    seg_idx = np.linspace(0, data.inputs.shape[0] - 1, args.segments).astype(int)  # spread over the text
    lag = lag_spectra_sweep(rhos, seeds, data.inputs[seg_idx], data.targets[seg_idx], activation=args.activation,
                            **net)
    lyap = lyapunov_sweep(rhos, seeds, chars_x[: args.lyap_length], activation=args.activation,
                          warmup=args.lyap_length // 10, **net)  # (R, S, H)
    lyap_med = np.median(lyap, axis=1)
    say(f"lag profiles over {len(seg_idx)} segments x {len(seeds)} seeds; Lyapunov spectra over "
        f"{args.lyap_length} steps")
    T = args.segment_length
    k = np.arange(T)
    lag_rows, spec_rows, lyap_rows, per_rho = [], [], [], []
    for i, rho in enumerate(rhos):
        ls = lag["log_sigma"][i]  # (T, H): row k-1 = lag k
        lag_rows.append(pd.DataFrame({
            "rho": rho, "k": k, "log10_profile": lag["log_profile"][i] / np.log(10),
            "log10_bound": lag["log_bound"][i] / np.log(10),
            "log10_sigma_max": np.concatenate([[0.0], ls[:-1, 0]]) / np.log(10),  # P_0 = I
            "log10_lyapunov_line": lyap_med[i, 0] * k / np.log(10)}))
        kk, ii = np.meshgrid(np.arange(1, T + 1), np.arange(1, args.hidden + 1), indexing="ij")
        spec_rows.append(pd.DataFrame({"rho": rho, "k": kk.ravel(), "i": ii.ravel(),
                                       "log10_sigma": ls.ravel() / np.log(10)}))
        for j, seed in enumerate(seeds):
            lyap_rows.append(pd.DataFrame({"rho": rho, "seed": int(seed), "i": np.arange(1, args.hidden + 1),
                                           "exponent": lyap[i, j]}))
        prof = lag["log_profile"][i]
        per_rho.append({
            "rho": float(rho),
            "lyapunov_top_median": float(lyap_med[i, 0]),
            "lyapunov_top_per_seed": [float(v) if np.isfinite(v) else None for v in lyap[i, :, 0]],
            "lyapunov_top_seed_min": finite_stat(lyap[i, :, 0], np.min),
            "lyapunov_top_seed_max": finite_stat(lyap[i, :, 0], np.max),
            "lyapunov_positive_count_median": float(np.median((lyap[i] > 0).sum(-1))),
            "lag_profile_slope": float(np.polyfit(k, prof, 1)[0]),  # nats per step back
            "log10_grad_ratio_at_max_lag": float(prof[-1] / np.log(10)),
            "bound_rate_log": float(lag["log_bound"][i][1]),  # log(gamma ||W_hh||_2), geometric mean
            "log10_bound_at_max_lag": float(lag["log_bound"][i][-1] / np.log(10)),
            "bound_over_measured_decades_at_max_lag": float((lag["log_bound"][i][-1] - prof[-1]) / np.log(10)),
            "bound_holds": bool(np.all(prof <= lag["log_bound"][i] + 1e-4)),
            "verdict": "vanishing" if lyap_med[i, 0] < 0 else "exploding",
            "mean_field_relu_lyapunov": float(np.log(rho / np.sqrt(2.0))),  # log(rho / sqrt 2): ReLU keeps half
        })
        say(f"rho {rho:g}: lambda_1 = {lyap_med[i, 0]:+.3f} nats/step ({per_rho[-1]['verdict']}); gradient ratio "
            f"at lag {T - 1}: 10^{per_rho[-1]['log10_grad_ratio_at_max_lag']:.1f}; report bound "
            f"(gamma||W||_2)^{T - 1} = 10^{per_rho[-1]['log10_bound_at_max_lag']:.1f}")
    write_csv(out / "lag_profile.csv", pd.concat(lag_rows, ignore_index=True))
    write_csv(out / "spectra.csv", pd.concat(spec_rows, ignore_index=True))
    write_csv(out / "lyapunov.csv", pd.concat(lyap_rows, ignore_index=True))

    # 2. phase diagram: rho grid x seeds x lengths, tanh and ReLU
    grid_rhos = np.linspace(args.rho_min, args.rho_max, args.grid)
    phase_rows, panels, crossings, samples = [], [], {}, {}
    for act in ("tanh", "relu"):
        g = get_activation(act).gamma
        panel = {"activation": act, "rho": grid_rhos, "lengths": {}}
        crossings[act] = {}
        st = stability_sweep(grid_rhos, seeds, chars_x[: max(args.lengths)], chars_y[: max(args.lengths)],
                             activation=act, lengths=args.lengths, **net)  # every length in one program
        panel["log_gamma_norm"] = np.log(g) + np.median(st["log_norm"], 1)
        panel["log_radius"] = np.median(st["log_radius"], 1)
        for n, L in enumerate(args.lengths):
            lyap_L, slope_L = st["lyap_top"][..., n], st["lag_slope"][..., n]
            finite = np.isfinite(lyap_L) & np.isfinite(slope_L)  # (G, S); overflowed or collapsed states left out
            lyap_m = np.array([np.median(v[f]) if f.any() else np.nan for v, f in zip(lyap_L, finite, strict=True)])
            slope_m = np.array([np.median(v[f]) if f.any() else np.nan for v, f in zip(slope_L, finite, strict=True)])
            panel["lengths"][L] = {"lyap": lyap_m, "slope": slope_m}
            frame = pd.DataFrame({"activation": act, "length": L, "rho": np.repeat(grid_rhos, len(seeds)),
                                  "seed": np.tile(seeds, len(grid_rhos)), "lyap_top": lyap_L.ravel(),
                                  "lag_slope": slope_L.ravel(), "log_gamma_norm": np.log(g) + st["log_norm"].ravel(),
                                  "log_radius": st["log_radius"].ravel()})
            phase_rows.append(frame[finite.ravel()])
            per_seed = [zero_crossing(grid_rhos, np.where(finite[:, j], lyap_L[:, j], np.nan))
                        for j in range(len(seeds))]  # each seed's own crossing (None: none in the grid)
            found = [c for c in per_seed if c is not None]
            crossings[act][str(L)] = {
                "rho_lyapunov_zero": zero_crossing(grid_rhos, lyap_m),
                "rho_lyapunov_zero_per_seed": per_seed,
                "rho_lyapunov_zero_seed_min": min(found) if found else None,
                "rho_lyapunov_zero_seed_max": max(found) if found else None,
                "seeds_without_crossing": len(per_seed) - len(found),
                "rho_lag_slope_zero": zero_crossing(grid_rhos, slope_m),
                "nonfinite_runs": int((~finite).sum()),
                "nonfinite_rhos": sorted({float(r) for r in frame["rho"][~finite.ravel()]}),
            }
            say(f"phase {act} T={L}: lambda_1 = 0 at rho {_about(crossings[act][str(L)]['rho_lyapunov_zero'])}, "
                f"lag slope = 0 at rho {_about(crossings[act][str(L)]['rho_lag_slope_zero'])}"
                + (f"; {int((~finite).sum())} runs without an exponent (state overflow or collapse), left out"
                   if (~finite).any() else ""))
        longest = panel["lengths"][max(args.lengths)]["lyap"]
        samples[act] = [{"rho": float(grid_rhos[g]), "length": max(args.lengths),
                         "lyapunov_top_median": None if np.isnan(longest[g]) else float(longest[g]),
                         "log_radius_median": float(panel["log_radius"][g]),
                         "log_gamma_norm_median": float(panel["log_gamma_norm"][g])}
                        for g in sorted({int(np.argmin(np.abs(grid_rhos - r))) for r in SAMPLE_RHOS})]
        crossings[act]["rho_bound_rate_one"] = zero_crossing(grid_rhos, panel["log_gamma_norm"])
        crossings[act]["rho_spectral_radius_one"] = zero_crossing(grid_rhos, panel["log_radius"])
        panels.append(panel)
    write_csv(out / "phase.csv", pd.concat(phase_rows, ignore_index=True))

    # 3. the other reading of the report's W_hh ~ N(0, 1/sqrt(h)): variance 1/sqrt(H), i.e. std H^(-1/4), the
    # same as our std-1/sqrt(H) matrix times H^(1/4) (docs/report_restated.md, "Decisions")
    scale = float(args.hidden ** 0.25)
    L_var = min(args.segment_length, len(chars_y))
    var = stability_sweep(rhos * scale, seeds, chars_x[:L_var], chars_y[:L_var], activation=args.activation, **net)
    v_lyap, v_slope = var["lyap_top"][..., 0], var["lag_slope"][..., 0]  # (R, S)
    medians = [finite_stat(v) for v in v_lyap]  # lambda_1 per rho, over the seeds
    variance_reading = {
        "scale": scale, "length": L_var, "rhos": rhos.tolist(), "effective_rhos": (rhos * scale).tolist(),
        "lyapunov_top_median": medians,
        "lyapunov_top_seed_min": [finite_stat(v, np.min) for v in v_lyap],
        "lyapunov_top_seed_max": [finite_stat(v, np.max) for v in v_lyap],
        "lag_slope_median": [finite_stat(v) for v in v_slope],
        "nonfinite_runs": int((~np.isfinite(v_lyap)).sum()),
        "verdict": [None if m is None else "vanishing" if m < 0 else "exploding" for m in medians]}
    medians_text = ", ".join("n/a" if v is None else f"{v:+.3f}" for v in variance_reading["lyapunov_top_median"])
    say(f"variance reading (W std H^-1/4 = rho x {scale:.2f} in our scale): lambda_1 medians {medians_text} "
        f"nats/step over {L_var} steps")

    # 3b. the seeds' W_hh against the population: a draw, or finite size? (issue 19)
    radii = radius_draws(seeds, args.hidden, args.recurrent_init)
    say(f"spectral radius / rho of the seeds' W_hh: {', '.join(f'{r:.2f}' for r in radii['per_seed'])} (median "
        f"{radii['median']:.3f}); population median over {radii['population_draws']} draws "
        f"{radii['population_median']:.3f}; P(median of {radii['seeds']} draws >= observed) = {radii['p_reach']:.3f}")

    # 4. figures, then metrics.json last
    figs = ["fig4_lag_profile.png", "fig5_jacobian_spectra.png", "fig6_phase_diagram.png"]
    plot_lag_profiles([
        {"rho": float(r), "k": k, "log_profile": lag["log_profile"][i], "log_bound": lag["log_bound"][i],
         "log_sigma_max": np.concatenate([[0.0], lag["log_sigma"][i][:-1, 0]]), "lyap": float(lyap_med[i, 0]),
         "label": f"{args.activation}, rho = {r:g}: gradient vs lag"} for i, r in enumerate(rhos)], path=out / figs[0])
    plot_jacobian_spectra([
        {"rho": float(r), "k": np.arange(1, T + 1), "log_sigma": lag["log_sigma"][i],
         "log_bound": np.arange(1, T + 1) * lag["log_bound"][i][1]} for i, r in enumerate(rhos)],
        {float(r): lyap_med[i] for i, r in enumerate(rhos)}, path=out / figs[1])
    plot_phase_diagram(panels, path=out / figs[2])
    metrics = {
        "experiment": "gradient_spectra",
        "config": {"rhos": rhos.tolist(), "activation": args.activation, "gamma": gamma,
                   "seeds": seeds.tolist(), "segments": int(len(seg_idx)), "segment_length": T,
                   "hidden": args.hidden, "recurrent_init": args.recurrent_init, "lyap_length": args.lyap_length,
                   "grid": args.grid, "rho_range": [args.rho_min, args.rho_max], "lengths": args.lengths,
                   "quick": args.quick, "devices": len(jax.devices())},
        "per_rho": per_rho,
        "phase_crossings": crossings,
        "phase_samples": samples,  # the phase diagram at the grid points nearest SAMPLE_RHOS, longest length
        "variance_reading": variance_reading,
        "relu_mean_field_edge": float(np.sqrt(2.0)),  # lambda_1 = log(rho / sqrt 2) = 0 for a large ReLU network
        "bound_over_measured_decades_min": min(r["bound_over_measured_decades_at_max_lag"] for r in per_rho),
        "bound_over_measured_decades_max": max(r["bound_over_measured_decades_at_max_lag"] for r in per_rho),
        "radius_draws": radii,
        "verdicts": _verdicts(radii, per_rho, len(seeds)),
        "wall_s": say.elapsed(),
        "figures": figs,
    }
    write_json(out / "metrics.json", metrics)
    return metrics


def _verdicts(radii: dict, per_rho: list[dict], n: int) -> list[dict]:
    """The experiment's tested claims (schemas.Verdict, ids stable across --seed-base)."""
    import scipy.stats

    from rnnjax import stats

    unit = "seeds" if n != 1 else "seed"
    word = "above the population" if radii["median"] > radii["population_median"] else "below the population"
    out = [{"id": "radius_draw_vs_population",
            "claim": "the seeds' W_hh have a median spectral radius over rho unlike the population's at this H",
            "test": f"Monte Carlo: medians of {radii['seeds']} of {radii['population_draws']} population draws, "
                    "two-sided", "p": radii["p"],
            "evidence": f"seeds {', '.join(f'{r:.2f}' for r in radii['per_seed'])} (median {radii['median']:.3f}); "
                        f"population median {radii['population_median']:.3f}; P(median of {radii['seeds']} draws "
                        f">= {radii['median']:.3f}) = {radii['p_reach']:.3f}",
            "verdict": stats.verdict(radii["p"], word, n=n, unit=unit)}]
    for r in per_rho:  # lambda_1's sign over the seeds: one-sample t-test of mean 0
        x = [v for v in r["lyapunov_top_per_seed"] if v is not None]
        p = float(scipy.stats.ttest_1samp(x, 0.0).pvalue) if len(x) > 1 and np.ptp(x) > 0 else None
        word = "vanishing" if x and np.mean(x) < 0 else "exploding"  # the sign of what the t-test tests
        out.append({"id": f"lyapunov_sign:{r['rho']:g}", "claim": f"rho {r['rho']:g}: gradients along the lag "
                    f"{word} (top Lyapunov exponent {'<' if word == 'vanishing' else '>'} 0)",
                    "test": "one-sample t-test of the seeds' lambda_1, mean 0, two-sided", "p": p,
                    "evidence": "lambda_1 per seed " + ", ".join(f"{v:+.3f}" for v in x),
                    "verdict": stats.verdict(1.0 if p is None else p, word, n=len(x),
                                             unit="seeds" if len(x) != 1 else "seed")})
    return out


if __name__ == "__main__":
    _cli.run_as_command(main, "gradient_spectra")
