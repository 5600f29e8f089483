"""The measured parts of README.md and docs/*.md, written from the main job's JSON.

Each function below writes one block ``<!-- generated: NAME -->`` ... ``<!-- /generated -->`` of a
documentation page, reading every number through ``Page.num`` (so its source is recorded, and
``python -m experiments.check_report OUT`` re-derives it). ``check_report OUT --write-docs``
rewrites the blocks from a full run; ``check_report OUT`` fails when a block differs from the run.
The prose around the blocks states no measured number.
"""

from __future__ import annotations

from collections.abc import Callable

from experiments.report_sections import (
    FL,
    RM,
    S1,
    S2,
    SP,
    SV,
    claim_rows,
    crossing_lengths,
    dm_cell,
    dm_verdict,
    side,
    spread,
    wide_starts,
)
from experiments.schemas import CONDITIONS

BLOCKS: dict[str, Callable] = {}


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
    s2 = page.json(S2)
    claims = [(i, j, *s2["claims"][i]["claim"].partition(": ")[::2]) for i, j in claim_rows(s2)]  # words: not recorded
    page.render("readme.findings.md.j2", n1=page.reader(S1), n2=page.reader(S2), ns=page.reader(SP), sp=page.json(SP),
                r=page.reader("reference.json", "experiment1"), claims=claims)


@block("readme.exp2")
def readme_exp2(page):
    sp = page.json(SP)
    page.render("readme.exp2.md.j2", sp=sp, n=page.reader(SP), L=sp["config"]["segment_length"] - 1,
                lengths=crossing_lengths(sp)["relu"], side=side(sp))


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
    m = page.json(S2)
    page.render("gradient_analysis.claims.md.j2", m=m, n=page.reader(S2), claims=claim_rows(m), wide=wide_starts(m))


@block("gradient_analysis.lag")
def gradient_lag(page):
    s2, sp = page.json(S2), page.json(SP)
    rows = [(i, next(k for k, e in enumerate(s2["per_rho"]) if abs(e["rho"] - r["rho"]) < 1e-9))
            for i, r in enumerate(sp["per_rho"])]
    finite = [[s for s, v in enumerate(r["lyapunov_top_per_seed"]) if v is not None] for r in sp["per_rho"]]
    page.render("gradient_analysis.lag.md.j2", sp=sp, n=page.reader(SP), n2=page.reader(S2), rows=rows,
                finite=finite, L=sp["config"]["segment_length"] - 1)


@block("gradient_analysis.phase")
def gradient_phase(page):
    sp = page.json(SP)
    page.render("gradient_analysis.phase.md.j2", sp=sp, n=page.reader(SP), lengths=crossing_lengths(sp)["relu"])


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
