"""The measured parts of README.md and docs/*.md, written from the main job's JSON.

Each function below writes one block ``<!-- generated: NAME -->`` ... ``<!-- /generated -->`` of a
documentation page, reading every number through ``Page.num`` (so its source is recorded, and
``python -m experiments.check_report OUT`` re-derives it). ``check_report OUT --write-docs``
rewrites the blocks from a full run; ``check_report OUT`` fails when a block differs from the run.
The prose around the blocks states no measured number.
"""

from __future__ import annotations

from collections.abc import Callable

from experiments.report import span
from experiments.report_sections import (
    FL,
    RM,
    S1,
    S2,
    SP,
    SV,
    claim_measured,
    crossing,
    dm_cell,
    dm_span,
    dm_verdict,
    spread,
    start_spread,
    variance_reading,
)
from experiments.schemas import CONDITIONS

BLOCKS: dict[str, Callable] = {}
VERB = {"vanishing": "vanish", "exploding": "explode"}


def block(name: str):
    def register(fn):
        BLOCKS[name] = fn
        return fn
    return register


def _rows(page, n, m, label: str, flags: str) -> str:
    """One row of Experiment 1's variants table (``n`` reads one stock_forecast metrics dict)."""
    return (f"| {label} | {flags} | {spread(n, 'rmse', '{:.4g}')} | {spread(n, 'mae', '{:.4g}')} | "
            f"{n('seeds_beating_persistence', fmt='{}')}/{m['seeds_count']} | "
            f"{dm_cell(n, m['dm_vs_persistence']['basis'])} | {n('train_rmse', fmt='{:.3g}')} |")


def _variants(page):
    """(reader, metrics, label, flags) of the report's setup and of every variant."""
    s1 = page.json(S1)
    out = [(page.reader(S1), {**s1, "seeds_count": s1["seeds"]["count"]}, "the report's setup", "(none)")]
    for name, v in page.json(SV)["variants"].items():
        n = page.reader(SV, "variants", name)
        out.append((n, {**v, "seeds_count": v["seeds"]}, n("label", fmt="{}"), f"`{n('flags', fmt='{}')}`"))
    return out


# ------------------------------------------------------------------------------------------ README


@block("readme.findings")
def readme_findings(page):
    n1 = page.reader(S1)
    s2, n2 = page.json(S2), page.reader(S2)
    sp, ns = page.json(SP), page.reader(SP)
    r = page.reader("reference.json", "experiment1")
    page.add("The main job's full run on the embedded data (`runs/report.md` holds these numbers and more, "
             "`docs/*.md` the details; its run times are in `runs/run.json`). Medians and means come with their "
             "spread over seeds.", "",
             "| | the report | rnnjax |", "|---|---|---|",
             f"| Exp. 1 test RMSE / MAE (vanilla RNN, report's settings) | {r('rmse')} / {r('mae')} (its ticker, "
             f"prices {r('price_range_low', fmt='{}')}–{r('price_range_high', fmt='{}')}) | "
             f"{n1('rmse')} / {n1('mae')} USD on MSFT (test prices {n1('data', 'test_close_min', fmt='{:.0f}')}–"
             f"{n1('data', 'test_close_max', fmt='{:.0f}')}), mean of {n1('seeds', 'count', fmt='{}')} seeds "
             f"(RMSE {span(n1('rmse_min'), n1('rmse_max'))}) |",
             f"| Exp. 1 persistence baseline (tomorrow = today) | not reported | **{n1('persistence_rmse')} / "
             f"{n1('persistence_mae')} USD**: the RNN's RMSE is {dm_span(n1, 'rmse_ratio', '{:.3g}')} times "
             "persistence's |")
    for i, c in enumerate(s2["claims"]):
        j = next(k for k, e in enumerate(s2["per_rho"]) if abs(e["rho"] - c["rho"]) < 1e-9)
        label, _, text = c["claim"].partition(": ")  # words, not numbers: read without recording
        page.add(f"| Exp. 2, rho = {n2('claims', i, 'rho', fmt='{:.2f}')}: \"{text}\" | {label} | "
                 f"{n2('claims', i, 'verdict', fmt='{}')}: ‖dL/dW_hh‖₂ {claim_measured(n2, j)} |")
    lyap = ", ".join(f"{ns('per_rho', i, 'lyapunov_top_median', fmt='{:.2f}')} "
                     f"({ns('per_rho', i, 'lyapunov_top_seed_min', fmt='{:.2f}')} to "
                     f"{ns('per_rho', i, 'lyapunov_top_seed_max', fmt='{:.2f}')})" for i in range(len(sp["per_rho"])))
    verdicts = sorted({r["verdict"] for r in sp["per_rho"]})
    page.add(f"| along the lag k (what §4.1 is about), W_ij with σ = 1/√H | — | "
             f"**{'all three rho ' + VERB[verdicts[0]] if len(verdicts) == 1 else 'mixed'}**: top Lyapunov exponent "
             f"{lyap} nats/step (median, seed range) |",
             f"| the same, W_ij with variance 1/√H (the report's other possible reading) | — | "
             f"{', '.join(sorted(set(sp['variance_reading']['verdict']) - {None}))}: "
             + ", ".join(ns("variance_reading", "lyapunov_top_median", i, fmt="{:+.2f}")
                         for i in range(len(sp["variance_reading"]["rhos"]))) + " nats/step |", "")


@block("readme.exp2")
def readme_exp2(page):
    sp, n = page.json(SP), page.reader(SP)
    L = sp["config"]["segment_length"] - 1
    pc = sp["phase_crossings"]
    lengths = [k for k in pc["relu"] if k.isdigit()]
    page.add("- **Experiment 2.** The report's Figure 3 plots ||dL/dW_hh|| against the *training step*; the curves "
             "differ in level (ordered by rho) more than in trend, and with lr 1e-4 for 200 steps the weights barely "
             "move. Vanishing and exploding are about the *lag*: measured with `jax.jacfwd` Jacobian products, the "
             f"gradient {L} steps back is "
             + ", ".join(f"10^{n('per_rho', i, 'log10_grad_ratio_at_max_lag', fmt='{:.1f}')}"
                         for i in range(len(sp["per_rho"])))
             + " of the last step's for rho = " + ", ".join(n("per_rho", i, "rho", fmt="{:.2f}")
                                                              for i in range(len(sp["per_rho"])))
             + ". For this ReLU network the gradient starts to explode where the top Lyapunov exponent crosses zero: "
             + "; ".join(crossing(n, "relu", t) for t in lengths)
             + f". That is {_below(sp, lengths)} the mean-field, large-H edge √2 ≈ {n('relu_mean_field_edge')} (ReLU "
             "switches off about half the units, so lambda_1 ≈ log(rho/√2)), and it varies from seed to seed at "
             f"H = {n('config', 'hidden', fmt='{}')}. For tanh the crossing moves with T ("
             + "; ".join(crossing(n, "tanh", t) for t in lengths)
             + "): at short T it is a transient of the start state, not the long-run edge. The report's criterion "
             f"gamma‖W_hh‖₂ < 1 holds only below rho = {n('phase_crossings', 'relu', 'rho_bound_rate_one')} (for "
             "these Gaussian matrices ‖W‖₂ ≈ 2 rho while the spectral radius ≈ rho), and its bound, though it holds "
             f"at every lag, is loose by {n('bound_over_measured_decades_min', fmt='{:.1f}')} to "
             f"{n('bound_over_measured_decades_max', fmt='{:.1f}')} decades at lag {L}. All of this reads the "
             "report's N(0, 1/√h) as a standard deviation; read as a variance, " + _variance_words(sp)
             + " (table above).")


def _variance_words(sp) -> str:
    verdicts = sorted(set(sp["variance_reading"]["verdict"]) - {None})
    return f"the three rho {VERB[verdicts[0]]}" if len(verdicts) == 1 else "the verdicts differ"


def _below(sp, lengths) -> str:
    """'below' / 'above' / 'around': where ReLU's median crossings lie against sqrt 2."""
    c = [sp["phase_crossings"]["relu"][t]["rho_lyapunov_zero"] for t in lengths]
    c = [x for x in c if x is not None]
    edge = sp["relu_mean_field_edge"]
    return "below" if c and max(c) < edge else "above" if c and min(c) > edge else "around"


@block("readme.variants")
def readme_variants(page):
    page.add("| variant | flags | RMSE (min–max) | MAE (min–max) | seeds below persistence | verdict against "
             "persistence | train RMSE |", "|---|---|---|---|---|---|---|")
    for n, m, label, flags in _variants(page):
        page.add(_rows(page, n, m, label, flags))
    n = page.reader(S1)
    page.add(f"| **persistence** | | **{n('persistence_rmse', fmt='{:.4g}')}** | "
             f"**{n('persistence_mae', fmt='{:.4g}')}** | | | {n('train_persistence_rmse', fmt='{:.3g}')} |", "")


@block("readme.remedies")
def readme_remedies(page):
    runs = page.json(RM)["clipping"]["runs"]
    bad = [i for i, r in enumerate(runs) if r["clip_norm"] is None and not r["finite"]]
    fixed = [i for i, r in enumerate(runs) if r["clip_norm"] is not None and r["finite"]
             and any(runs[b]["lr"] == r["lr"] for b in bad)]
    page.render("readme.remedies.md.j2", n=page.reader(RM), adding=page.json(RM)["adding"]["models"], bad=bad,
                fixed=fixed)


# --------------------------------------------------------------------------------- stock_forecast


@block("stock_forecast.trap")
def stock_trap(page):
    page.render("stock_forecast.trap.md.j2", n=page.reader(S1))


@block("stock_forecast.results")
def stock_results(page):
    n1 = page.reader(S1)
    page.add(f"Test days {n1('data', 'test_range', 0, fmt='{}')} .. {n1('data', 'test_range', 1, fmt='{}')} "
             f"({n1('data', 'n_test_rows', fmt='{:,}')} days). RMSE/MAE in USD, mean over the seeds with (min–max). "
             "The verdict against persistence is by the HAC Diebold–Mariano test at 5% where the loss differential "
             "allows one (lag-1 autocorrelation below the flag's threshold), else by the RMSE ratio (a factor 2 "
             "either way decides); the cell says which.", "",
             "| variant | flags | test RMSE | test MAE | seeds with RMSE < persistence | verdict against persistence | "
             "train RMSE |", "|---|---|---|---|---|---|---|")
    for n, m, label, flags in _variants(page):
        page.add(_rows(page, n, m, label, flags))
    page.add(f"| **persistence** (close of the day before) | | **{n1('persistence_rmse', fmt='{:.4g}')}** | "
             f"**{n1('persistence_mae', fmt='{:.4g}')}** | | | {n1('train_persistence_rmse', fmt='{:.3g}')} |")


@block("stock_forecast.findings")
def stock_findings(page):
    s1, n1 = page.json(S1), page.reader(S1)
    v = page.json(SV)["variants"]
    rv = lambda name: page.reader(SV, "variants", name)
    better = [k for k, x in v.items() if x["verdict_vs_persistence"] == "better"]
    ties = [k for k, x in v.items() if x["verdict_vs_persistence"] == "indistinguishable"]
    worse = [k for k, x in v.items() if x["verdict_vs_persistence"] == "worse"]
    seeds = s1["seeds"]["count"]
    basis = s1["dm_vs_persistence"]["basis"]
    lines = [f"- **Against persistence, the report's setup:** {dm_verdict(n1, seeds, basis)}"]
    lines.append("- **The variants:** better than persistence: " + (", ".join(rv(k)("label", fmt="{}") for k in better)
                                                                   or "none")
                 + "; indistinguishable from it: " + (", ".join(rv(k)("label", fmt="{}") for k in ties) or "none")
                 + "; worse: " + (", ".join(rv(k)("label", fmt="{}") for k in worse) or "none") + ".")
    for k in ties:
        n = rv(k)
        ir = page.json(_variant_file(k))["implied_returns"]
        flat = ir["std"][1] is not None and ir["std"][1] < ir["actual_std"] / 4  # moves under a quarter of the data's
        why = " because it learned to be persistence" if flat else ""
        lines.append(f"- **{n('label', fmt='{}')} ties with persistence** (RMSE {n('rmse', fmt='{:.4f}')} against "
                     f"{n('persistence_rmse', fmt='{:.4f}')}){why}"
                     + f": the daily log-returns its forecasts imply have a standard deviation of "
                     f"{_pct(page, SV, k, 'std')} (the actual returns': "
                     f"{page.num(_variant_file(k), 'implied_returns', 'actual_std', fmt='{:.2%}')}), a "
                     f"correlation with the actual return of {_span(page, SV, k, 'corr', '{:.3f}')} and the right sign "
                     f"on {_span(page, SV, k, 'sign_agreement', '{:.1%}')} of days.")
    lines.append(f"- **Why the report's setup fails.** The forecast follows the price while it stays inside the "
                 f"train range and flattens below the train maximum ({n1('data', 'train_close_max')}) while the test "
                 f"price climbs to {n1('data', 'test_close_max')}. A tanh RNN fitted on min–max-scaled prices cannot "
                 "go far beyond the scale it was fitted on, so the error grows with the distance above the train "
                 "range — the same failure as the report's RMSE ≈ 136 on prices of 220–540, where MAE ≈ RMSE points "
                 "to an almost constant offset.")
    lines.append(f"- **One seed says little.** With the report's settings the test RMSE spans {n1('rmse_min')}–"
                 f"{n1('rmse_max')} over {seeds} seeds; the final training loss spans "
                 f"{_loss_span(page, n1, s1)}.")
    cm = v.get("many_to_many", {})
    active = ("is never active in the report's run" if not s1["clipping"]["epochs_clipped"][1] else
              f"is active in {n1('clipping', 'epochs_clipped', 0, fmt='{}')}–"
              f"{n1('clipping', 'epochs_clipped', 1, fmt='{}')} epochs of the report's run")
    lines.append(f"- **Clipping at tau = {n1('clipping', 'tau', fmt='{:g}')}** {active}: the global gradient norm "
                 "starts at "
                 f"{n1('clipping', 'grad_norm_first', 0, fmt='{:.2g}')}–"
                 f"{n1('clipping', 'grad_norm_first', 1, fmt='{:.2g}')}"
                 f" and ends at {n1('clipping', 'grad_norm_last', 0, fmt='{:.2g}')}–"
                 f"{n1('clipping', 'grad_norm_last', 1, fmt='{:.2g}')} (Figure 1)"
                 + (_m2m_clipping(page) if cm else "") + ". Exploding gradients are not what goes wrong here.")
    page.add(*lines)


def _variant_file(name: str) -> str:
    return f"stock_variants/{name}/metrics.json"


def _pct(page, sv, k, key) -> str:
    f = _variant_file(k)
    return (f"{page.num(f, 'implied_returns', key, 0, fmt='{:.2%}')}–"
            f"{page.num(f, 'implied_returns', key, 1, fmt='{:.2%}')}")


def _span(page, sv, k, key, fmt) -> str:
    f = _variant_file(k)
    return f"{page.num(f, 'implied_returns', key, 0, fmt=fmt)} to {page.num(f, 'implied_returns', key, 1, fmt=fmt)}"


def _loss_span(page, n1, s1) -> str:
    losses = [x for x in s1["final_loss_per_seed"] if x is not None]
    lo, hi = s1["final_loss_per_seed"].index(min(losses)), s1["final_loss_per_seed"].index(max(losses))
    return f"{n1('final_loss_per_seed', lo, fmt='{:.1e}')}–{n1('final_loss_per_seed', hi, fmt='{:.1e}')}"


def _m2m_clipping(page) -> str:
    f = _variant_file("many_to_many")
    return (f"; with a loss at every step it starts at {page.num(f, 'clipping', 'grad_norm_first', 0, fmt='{:.2g}')}–"
            f"{page.num(f, 'clipping', 'grad_norm_first', 1, fmt='{:.2g}')} and is clipped in "
            f"{page.num(f, 'clipping', 'epochs_clipped', 0, fmt='{}')}–"
            f"{page.num(f, 'clipping', 'epochs_clipped', 1, fmt='{}')}"
            " epochs")


# ------------------------------------------------------------------------------ gradient_analysis


@block("gradient_analysis.claims")
def gradient_claims(page):
    m, n = page.json(S2), page.reader(S2)
    page.add(f"{len(m['config']['seeds'])} seeds per rho; spectral norm ‖·‖₂, as the report writes it (`history.csv` "
             "also holds the Frobenius norm, and `--norm fro` judges that one). The measured column is the median "
             "curve over seeds with every seed's first value and the seeds' range at the end; the test column is the "
             "claim made checkable, applied to the median curve:", "",
             "| rho | the report's claim | measured | test | verdict |", "|---|---|---|---|---|")
    for i, c in enumerate(m["claims"]):
        j = next(k for k, e in enumerate(m["per_rho"]) if abs(e["rho"] - c["rho"]) < 1e-9)
        page.add(f"| {n('claims', i, 'rho', fmt='{:.2f}')} | {n('claims', i, 'claim', fmt='{}')} | "
                 f"{claim_measured(n, j)} | {n('claims', i, 'test', fmt='{}')} | "
                 f"**{n('claims', i, 'verdict', fmt='{}')}** |")
    page.add("", "Loss over the run (median): "
             + "; ".join(f"rho {n('per_rho', i, 'rho', fmt='{:g}')} "
                         f"{n('per_rho', i, 'loss_start_median', fmt='{:.0f}')} → "
                         f"{n('per_rho', i, 'loss_last_finite_median', fmt='{:.0f}')}"
                         for i in range(len(m["per_rho"])))
             + " nats per segment: with lr 1e-4 and 200 steps the weights barely move." + start_spread(n, m))


@block("gradient_analysis.lag")
def gradient_lag(page):
    s2, n2 = page.json(S2), page.reader(S2)
    sp, n = page.json(SP), page.reader(SP)
    L = sp["config"]["segment_length"] - 1
    page.add("| rho | ‖W_hh‖₂ = gamma‖W_hh‖₂ | spectral radius | "
             f"lambda_1 (QR, {n('config', 'lyap_length', fmt='{:,}')} "
             f"steps): median (seed range) | lambda_1 over {n2('config', 'stability_chars', fmt='{:,}')} steps "
             "(Experiment 2's seeds) | "
             f"‖dL_T/dh_(T-{L})‖ / ‖dL_T/dh_T‖ | report bound (gamma‖W‖₂)^{L} | mean field log(rho/√2) |",
             "|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(sp["per_rho"]):
        j = next(k for k, e in enumerate(s2["per_rho"]) if abs(e["rho"] - r["rho"]) < 1e-9)
        page.add(f"| {n('per_rho', i, 'rho', fmt='{:.2f}')} | {n2('per_rho', j, 'init_W_hh_norm2_median')} | "
                 f"{n2('per_rho', j, 'init_spectral_radius_median')} | "
                 f"{n('per_rho', i, 'lyapunov_top_median', fmt='{:.3f}')} "
                 f"({n('per_rho', i, 'lyapunov_top_seed_min', fmt='{:.3f}')} to "
                 f"{n('per_rho', i, 'lyapunov_top_seed_max', fmt='{:.3f}')}) | "
                 f"{n2('per_rho', j, 'init_top_lyapunov_median', fmt='{:.3f}')} | "
                 f"10^{n('per_rho', i, 'log10_grad_ratio_at_max_lag', fmt='{:.1f}')} | "
                 f"10^{n('per_rho', i, 'log10_bound_at_max_lag', fmt='{:+.1f}')} | "
                 f"{n('per_rho', i, 'mean_field_relu_lyapunov', fmt='{:.3f}')} |")
    per_seed = lambda i, r: ", ".join(n("per_rho", i, "lyapunov_top_per_seed", s, fmt="{:+.3f}")
                                      for s, v in enumerate(r["lyapunov_top_per_seed"]) if v is not None)
    seeds = "; ".join(f"rho {n('per_rho', i, 'rho', fmt='{:g}')}: {per_seed(i, r)}"
                      for i, r in enumerate(sp["per_rho"]))
    verdicts = sorted({r["verdict"] for r in sp["per_rho"]})
    page.add("", f"**{'All three ' + VERB[verdicts[0]] if len(verdicts) == 1 else 'Mixed verdicts'}** along the lag "
             f"(geometric mean over {n('config', 'segments', fmt='{}')} segments x {len(sp['config']['seeds'])} "
             "seeds). "
             f"lambda_1 per seed: {seeds} nats/step. The lag profiles are straight lines on a log scale whose slopes ("
             + ", ".join(n("per_rho", i, "lag_profile_slope", fmt="{:.3f}") for i in range(len(sp["per_rho"])))
             + " nats/step) follow lambda_1: the top Lyapunov exponent *is* the vanishing rate. The report's bound "
             f"holds at every lag (tested), but at lag {L} it is loose by "
             f"{n('bound_over_measured_decades_min', fmt='{:.1f}')} "
             f"to {n('bound_over_measured_decades_max', fmt='{:.1f}')} decades: it says nothing about these networks.",
             "", variance_reading(n, sp))


@block("gradient_analysis.phase")
def gradient_phase(page):
    sp, n = page.json(SP), page.reader(SP)
    pc = sp["phase_crossings"]
    lengths = [k for k in pc["relu"] if k.isdigit()]
    page.add(f"{n('config', 'grid', fmt='{}')} values of rho in [{n('config', 'rho_range', 0, fmt='{}')}, "
             f"{n('config', 'rho_range', 1, fmt='{}')}], {len(sp['config']['seeds'])} seeds, lengths "
             + " / ".join(lengths) + "; lambda_1 = 0 where the median over seeds crosses zero, with the seeds' own "
             "crossings:", "",
             "| activation | lambda_1 = 0 at rho (per length; seed range) | lag-profile slope = 0 at rho | "
             "gamma‖W_hh‖₂ = 1 at rho | spectral radius = 1 at rho |", "|---|---|---|---|---|")
    for act in ("relu", "tanh"):
        page.add(f"| {act} | " + "; ".join(crossing(n, act, L) for L in lengths) + " | "
                 + " / ".join(n("phase_crossings", act, L, "rho_lag_slope_zero", missing="—") for L in lengths)
                 + f" | {n('phase_crossings', act, 'rho_bound_rate_one')} | "
                 f"{n('phase_crossings', act, 'rho_spectral_radius_one')} |")
    samples = lambda act: "; ".join(
        f"rho {n('phase_samples', act, i, 'rho', fmt='{:.2f}')}: lambda_1 "
        f"{n('phase_samples', act, i, 'lyapunov_top_median', fmt='{:+.2f}', missing='—')}, log radius "
        f"{n('phase_samples', act, i, 'log_radius_median', fmt='{:+.2f}')}, log gamma‖W‖₂ "
        f"{n('phase_samples', act, i, 'log_gamma_norm_median', fmt='{:+.2f}')}"
        for i in range(len(sp["phase_samples"][act])))
    page.add("", f"Sampled along the grid at T = {n('phase_samples', 'tanh', 0, 'length', fmt='{}')} (medians over "
             f"seeds), tanh: {samples('tanh')}. ReLU: {samples('relu')}.")


# -------------------------------------------------------------------------------------- remedies


@block("remedies.clipping")
def remedies_clipping(page):
    page.render("remedies.clipping.md.j2", n=page.reader(RM), runs=page.json(RM)["clipping"]["runs"])


@block("remedies.adding")
def remedies_adding(page):
    page.render("remedies.adding.md.j2", n=page.reader(RM), models=page.json(RM)["adding"]["models"])


@block("remedies.lag")
def remedies_lag(page):
    m = page.json(RM)
    models, a = m["lag_profiles"]["models"], m["adding"]["models"]
    gain = lambda name, stage: models[name][stage]["log10_gain_state"]
    lost = [name for name in models if gain(name, "init") is not None and gain(name, "init") < -3]
    solved = [k for k in models if k in a and a[k]["solved_seeds"] == a[k]["num_seeds"]]
    page.render("remedies.lag.md.j2", n=page.reader(RM), models=models, adding=a, seqs=m["lag_profiles"]["sequences"],
                lost=lost, kept=[name for name in models if name not in lost],
                both=[k for k in solved if gain(k, "trained") is not None and gain(k, "trained") > -1],
                steep=[k for k in solved if gain(k, "trained") is not None and gain(k, "trained") <= -1],
                zero=[k for k in models if models[k]["trained"]["sequences_exactly_zero"]["state"]])


# -------------------------------------------------------------------------------------- flossing



def _argext(values, pick):
    """Index of the smallest (``pick=min``) or largest value of a list that may hold None."""
    good = [(v, i) for i, v in enumerate(values) if v is not None]
    return pick(good)[1]


@block("flossing.choice")
def flossing_choice(page):
    m = page.json(FL)["gradient_choice"]
    before, exact = m["sum_sq_before"], m["gradients"].get("exact")
    page.render("flossing.choice.md.j2", m=m, g=page.reader(FL, "gradient_choice"),
                before_min=_argext(before, min), before_max=_argext(before, max),
                exact_min=None if exact is None else _argext(exact["reduction"], min),
                exact_max=None if exact is None else _argext(exact["reduction"], max))


@block("flossing.recall")
def flossing_recall(page):
    m, n = page.json(FL), page.reader(FL)
    a0, c0 = (m["conditions"][k]["per_delay"][0]["test_mse_mean"] for k in ("plain", "floss_before_and_during"))
    page.render("flossing.recall.md.j2", m=m, n=n, c=page.reader(FL, "config", fmt="{}"),
                sp=page.reader(FL, "spectra"), conditions=CONDITIONS, last=len(m["delays"]) - 1,
                worse_fit=a0 is not None and c0 is not None and c0 > 2 * a0)


@block("readme.flossing")
def readme_flossing(page):
    m, n = page.json(FL), page.reader(FL)
    page.render("readme.flossing.md.j2", n=n, c=page.reader(FL, "config", fmt="{}"),
                g=page.reader(FL, "gradient_choice"), best=m["gradient_choice"]["best"], last=len(m["delays"]) - 1)
