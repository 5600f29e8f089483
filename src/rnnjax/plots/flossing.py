"""Figures of the flossing experiment (Figures 10-14): success vs delay, Lyapunov spectra, the monitor, the
gradient, the time to solve.

Each takes the DataFrame the experiment writes as CSV and its JSON summary (``metrics.json``, or
``gradient_choice.json`` for Figure 13), so a figure can be redrawn from ``runs/flossing/``;
:func:`plot_survival` takes plain arrays (times to solve, solved or censored, a group per run).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rnnjax import stats
from rnnjax.plots.common import finish, km_steps, new_figure, single_axes, styled


def _delay_axis(ax, delays) -> None:
    """Log-scaled delay axis ticked at exactly the delays tried, plainly labelled."""
    ax.set_xscale("log")
    ax.set_xticks(list(delays))
    ax.set_xticklabels([str(d) for d in delays])
    ax.minorticks_off()


def _legend_below(ax, ncol=1) -> None:
    """A legend under the axes, never over the data."""
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=ncol)

LABELS = {"plain": "(a) plain training", "floss_before": "(b) flossing before training",
          "floss_before_and_during": "(c) flossing before and during"}
SHORT = {"plain": "(a) plain", "floss_before": "(b) before", "floss_before_and_during": "(c) before + during"}
COLORS = {"plain": "tab:gray", "floss_before": "tab:blue", "floss_before_and_during": "tab:red",
          "init": "k", "flossed": "tab:cyan",
          "exact": "tab:purple", "frozen_states": "tab:orange", "local": "tab:green"}


@styled
def plot_delay(runs: pd.DataFrame, summary: dict, threshold: float, *, path=None) -> Figure:
    """Figure 10: success rate and held-out MSE against the delay d, per condition (seeds as points)."""
    fig, (ax_s, ax_m) = new_figure(1, 2, width=11.0, height=4.8)
    conds = summary["conditions"]
    offsets = dict(zip(conds, (-0.04, 0.0, 0.04), strict=False))
    for name, c in conds.items():
        d = np.array([p["delay"] for p in c["per_delay"]])
        rate = np.array([p["success_rate"] for p in c["per_delay"]])
        lo = np.array([p.get("ci_low", r) for p, r in zip(c["per_delay"], rate, strict=True)])
        hi = np.array([p.get("ci_high", r) for p, r in zip(c["per_delay"], rate, strict=True)])
        ax_s.errorbar(d * (1 + offsets[name]), rate, yerr=[rate - lo, hi - rate], fmt="o-", capsize=3,
                      color=COLORS[name], label=LABELS[name])
        sub = runs[(runs["condition"] == name) & runs["finite"]]
        ax_m.plot(sub["delay"] * (1 + offsets[name]), sub["test_mse"], ".", color=COLORS[name], alpha=0.5, ms=5)
        mean = [p["test_mse_mean"] if p["test_mse_mean"] is not None else np.nan for p in c["per_delay"]]
        ax_m.plot(d * (1 + offsets[name]), mean, "-", color=COLORS[name], lw=1.6, label=LABELS[name])
    ax_m.axhline(1.0, color="k", ls="--", lw=1, label="predict 0 (MSE 1)")
    ax_s.set(xlabel="delay d between the bit and its recall (steps)", ylim=(-0.05, 1.05),
             ylabel=f"fraction of seeds solving it (accuracy >= {threshold:g})",
             title="Success rate (bars: Clopper-Pearson 95%)")
    ax_m.set(yscale="log", xlabel="delay d (steps)", ylabel="held-out MSE of y_T (dots: seeds)",
             title="Test loss (lines: mean over seeds)")
    for ax in (ax_s, ax_m):
        _delay_axis(ax, summary["delays"])
    _legend_below(ax_s, ncol=2)
    _legend_below(ax_m, ncol=2)
    fig.suptitle("Delayed recall of one bit, vanilla tanh RNN: does gradient flossing bridge longer delays?")
    return finish(fig, path)


@styled
def plot_spectra(spectra: pd.DataFrame, summary: dict, *, path=None) -> Figure:
    """Figure 11: Lyapunov spectra (mean over seeds, band min-max) at init, after flossing, after training at
    the longest delay; and log10 condition number of the long-term Jacobian against the delay."""
    fig, (ax_a, ax_b, ax_c) = new_figure(1, 3, width=15.0, height=5.6)

    def band(ax, frame, color, label):
        g = frame.groupby("index")["lambda"]
        i = np.asarray(g.mean().index)
        ax.plot(i, g.mean().values, color=color, lw=1.6, label=label)
        ax.fill_between(i, g.min().values, g.max().values, color=color, alpha=0.2, lw=0)

    band(ax_a, spectra[spectra["stage"] == "init"], COLORS["init"], "initialisation")
    band(ax_a, spectra[spectra["stage"] == "flossed"], COLORS["flossed"], "after flossing")
    d_max = max(summary["delays"])
    trained = spectra[(spectra["stage"] == "trained") & (spectra["delay"] == d_max)]
    for name in summary["conditions"]:
        band(ax_b, trained[trained["condition"] == name], COLORS[name], LABELS[name])
    for ax, title in ((ax_a, "Before training"), (ax_b, f"After training at d = {d_max}")):
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set(xlabel="exponent index i", ylabel="Lyapunov exponent lambda_i (nats/step)", title=title)
        _legend_below(ax)
    for name, c in summary["conditions"].items():
        d = [p["delay"] for p in c["per_delay"]]
        ax_c.plot(d, [p["log10_cond_mean"] for p in c["per_delay"]], "o-", color=COLORS[name], label=LABELS[name])
    for stage in ("init", "flossed"):
        ax_c.axhline(summary["spectra"][stage]["log10_cond_mean"], color=COLORS[stage], ls="--", lw=1,
                     label=f"{'initialisation' if stage == 'init' else 'after flossing'} (before training)")
    ax_c.set(xlabel="delay d the network was trained on (steps)",
             ylabel="log10 sigma_1 / sigma_num, T-step Jacobian", title="Condition number (mean over seeds)")
    _delay_axis(ax_c, summary["delays"])
    _legend_below(ax_c)
    fig.suptitle("Lyapunov spectrum of the forward dynamics (fixed noise probe), nats per step")
    return finish(fig, path)


@styled
def plot_monitor(monitor: pd.DataFrame, summary: dict, *, path=None) -> Figure:
    """Figure 12: the top exponents recorded by ``fit``'s monitor during training, per condition, longest delay."""
    d_show = max(summary["delays"])
    conds = list(summary["conditions"])
    fig, axes = new_figure(1, len(conds), width=4.6 * len(conds), height=4.6, sharey=True, squeeze=False)
    for ax, name in zip(axes[0], conds, strict=True):
        sub = monitor[(monitor["condition"] == name) & (monitor["delay"] == d_show)]
        for j, g in sub.groupby("index"):
            m = g.groupby("step")["lambda"]
            ax.plot(m.mean().index, m.mean().values, lw=1.5, label=f"lambda_{j}")
            ax.fill_between(m.mean().index, m.min().values, m.max().values, alpha=0.15, lw=0)
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set(xlabel="training step", title=LABELS[name])
    axes[0][0].set_ylabel("lambda_i (nats/step): mean, seed range")
    _legend_below(axes[0][len(conds) // 2], ncol=4)
    fig.suptitle(f"Spectrum monitored inside the jitted training run (d = {d_show})")
    return finish(fig, path)


@styled
def plot_gradient_choice(curves: pd.DataFrame, choice: dict, *, ax=None, path=None) -> Figure:
    """Figure 13: sum lambda_i^2 during flossing of edge-of-chaos networks, per gradient (median, quartile band)."""
    fig, ax = single_axes(ax, width=7.5, height=5.0)
    for mode, g in curves.groupby("gradient", sort=False):
        m = g.groupby("step")["loss"]
        r = choice["gradients"][mode]
        ax.plot(m.median().index, m.median().values, color=COLORS.get(mode), lw=1.6,
                label=f"{mode}: reduction min {r['min_reduction']:.3g}x, {r['seeds_at_least_5x']}/{choice['seeds']} "
                      "seeds >= 5x")
        ax.fill_between(m.median().index, m.quantile(0.25).values, m.quantile(0.75).values, color=COLORS.get(mode),
                        alpha=0.15, lw=0)
    ax.set(yscale="log", xlabel="flossing step (Adam)", ylabel="sum_i lambda_i^2 on the flossing sequence",
           title=f"Flossing edge-of-chaos tanh RNNs (rho {choice['rho']}, H {choice['hidden']}, "
                 f"T {choice['T']}, num {choice['num']})")
    _legend_below(ax)
    return finish(fig, path)


@styled
def plot_survival(times, events, groups, *, budget: float, colors=None, labels=None, ax=None, path=None) -> Figure:
    """Kaplan-Meier curves of the time to solve, one per group (:func:`rnnjax.stats.kaplan_meier`).

    Args:
      times: steps until each run first met the success criterion, or the budget where it never did (n,).
      events: True where the run solved (n,); False: censored at ``budget``.
      groups: a label per run (n,); one curve per distinct label, in order of first appearance.
      budget: the training budget (the x axis ends there; a censored run is marked at it).
      colors, labels: optional ``{group: colour}``, ``{group: legend text}``.
      ax: draw into these axes (else a new figure); path: save the figure there.
    """
    fig, ax = single_axes(ax, width=6.0, height=4.5)
    times, events, groups = np.asarray(times, float), np.asarray(events, bool), np.asarray(groups)
    for g in dict.fromkeys(groups.tolist()):
        sel = groups == g
        km = stats.kaplan_meier(times[sel], events[sel])
        t, s, lo, hi = km_steps(km, end=budget)
        color = (colors or {}).get(g)
        text = (labels or {}).get(g, str(g))
        line, = ax.step(t, s, where="post", color=color, lw=1.6,
                        label=f"{text}: reached {int(events[sel].sum())}/{int(sel.sum())}")
        ax.fill_between(t, lo, hi, step="post", color=line.get_color(), alpha=0.15, lw=0)
    ax.set(xlim=(0, budget), ylim=(-0.03, 1.03), xlabel="training step",
           ylabel="fraction of seeds not yet solved (Kaplan-Meier)")
    return finish(fig, path)


@styled
def plot_survival_grid(runs: pd.DataFrame, summary: dict, *, rho: float, budget: float, path=None) -> Figure:
    """Figure 14: Kaplan-Meier curves of the time to solve per condition, one panel per delay, at ``rho``;
    ``runs`` is ``survival.csv`` (rho, condition, delay, seed, steps_to_solve, solved)."""
    delays = summary["delays"]
    fig, axes = new_figure(1, len(delays), width=3.4 * len(delays), height=4.4, sharey=True, squeeze=False)
    sub = runs[np.isclose(runs["rho"], rho)]
    tests = summary.get("tests", {})
    for i, (ax, d) in enumerate(zip(axes[0], delays, strict=True)):
        at = sub[sub["delay"] == d]
        plot_survival(at["steps_to_solve"], at["solved"], at["condition"], budget=budget, colors=COLORS,
                      labels=SHORT, ax=ax)
        p = [tests.get(k, [{}] * len(delays))[i].get("logrank_p") for k in ("b_vs_a", "c_vs_a")]
        note = ", ".join(f"{k[0]} vs a p = {x:.2g}" for k, x in zip(("b_vs_a", "c_vs_a"), p, strict=True)
                         if x is not None)
        ax.set_title(f"d = {d}" + (f"\nlog-rank: {note}" if note else ""), fontsize=9)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)  # below the data
        if i:
            ax.set_ylabel("")
    fig.suptitle(f"Time to solve the delayed recall (rho {rho:g}; censored at {budget:g} steps; bands: 95%)")
    return finish(fig, path)
