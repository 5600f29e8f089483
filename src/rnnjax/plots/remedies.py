"""Figures of the remedies experiment: clipping (Figure 7), lag profiles by cell (Figure 8), adding problem (Figure 9),
time to solve it (Figure 9b).

Each takes the DataFrames the experiment writes as CSV (and its JSON summary), so a figure can be
redrawn from ``runs/remedies/`` without retraining.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rnnjax.plots.common import finish, km_steps, new_figure, single_axes, styled

MODEL_LABELS = {
    "rnn_tanh": "RNN tanh (Gaussian, rho 1)",
    "irnn": "IRNN (ReLU, W_hh = I)",
    "lstm": "LSTM (forget bias 1)",
    "gru": "GRU",
    "rnn_relu_rho0.9": "RNN ReLU, rho 0.9",
    "rnn_relu_rho0.99": "RNN ReLU, rho 0.99",
    "rnn_relu_rho1.2": "RNN ReLU, rho 1.2",
    "rnn_orthogonal": "RNN tanh, orthogonal",
}
COLORS = {
    "rnn_tanh": "tab:blue", "irnn": "tab:orange", "lstm": "tab:green", "gru": "tab:red",
    "rnn_relu_rho0.9": "tab:purple", "rnn_relu_rho0.99": "tab:brown", "rnn_relu_rho1.2": "tab:pink",
    "rnn_orthogonal": "tab:gray",
}


def _label(name: str) -> str:
    return MODEL_LABELS.get(name, name)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


@styled
def plot_clipping(frame: pd.DataFrame, summary: dict, *, path=None) -> Figure:
    """Figure 7: loss and global gradient norm per step, each learning rate with and without clipping, every seed.

    ``frame`` has columns seed, lr, clipped, step, loss, grad_norm (rows of a diverged run stop before its
    first non-finite step, marked with an x); ``summary`` is ``clipping.json`` (its ``settings`` give each
    legend entry's count of non-finite runs).
    """
    fig, (ax_loss, ax_grad) = new_figure(1, 2, width=12.0, height=4.5)
    lrs = sorted(frame["lr"].unique())
    colors = dict(zip(lrs, ["tab:blue", "tab:orange", "tab:red", "tab:purple", "tab:green"], strict=False))
    if "seed" not in frame:
        frame = frame.assign(seed=0)
    runs = {(r["lr"], r["clip_norm"] is not None, r.get("seed", 0)): r for r in summary["runs"]}
    settings = {(r["lr"], r["clip_norm"] is not None): r for r in summary.get("settings", [])}
    for (lr, clipped), group in frame.groupby(["lr", "clipped"], sort=True):
        ls, color = ("-" if clipped else "--"), colors[lr]
        st = settings.get((lr, bool(clipped)))
        count = f"{st['nonfinite']}/{st['runs']} runs NaN/inf" if st else ""
        ax_loss.plot([], [], ls=ls, color=color, label=f"lr {lr:g}, {'clipped' if clipped else 'no clipping'}: {count}")
        for seed, g in group.groupby("seed"):
            r = runs[(lr, bool(clipped), seed)]
            ax_loss.plot(g["step"], g["loss"], ls=ls, color=color, lw=0.7, alpha=0.5)
            ax_grad.plot(g["step"], g["grad_norm"], ls=ls, color=color, lw=0.6, alpha=0.5)
            if not r["finite"] and len(g):
                for ax, col in ((ax_loss, "loss"), (ax_grad, "grad_norm")):
                    ax.plot(g["step"].iloc[-1], g[col].iloc[-1], "x", color=color, ms=6, mew=1.5)
    ax_grad.axhline(summary["tau"], color="k", lw=1, ls=":", label=f"clipping threshold tau = {summary['tau']:g}")
    ax_loss.set(xlabel="update step", ylabel="cross-entropy per 50-char segment (nats)", yscale="log",
                title="Loss, every seed (x: last finite step before NaN/inf)")
    ax_grad.set(xlabel="update step", ylabel="global gradient norm before clipping", yscale="log",
                title="Gradient norm (dashed: unclipped runs)")
    ax_loss.legend(fontsize=7)
    ax_grad.legend(fontsize=8)
    seeds = summary.get("seeds", 1)
    fig.suptitle(f"Clipping on Experiment 2's RNN (ReLU, hidden {summary['hidden']}, rho {summary['rho']:g}, "
                 f"SGD, {summary['steps']} steps, {seeds} seeds per setting)")
    return finish(fig, path)


@styled
def plot_lag_profiles(frame: pd.DataFrame, *, path=None) -> Figure:
    """Figure 8: ||dL_T/dh_{T-k}|| / ||dL_T/dh_T|| vs lag k, per model, at initialisation and after training.

    ``frame`` has columns model, stage ("init"/"trained"), part ("state"/"h"/"c"), lag, log10_norm (and seed:
    then each line is the median over the seeds).
    Solid lines: the whole recurrent state; for the LSTM a dotted line is the cell-state part c,
    both relative to the k = 0 value of the state.
    """
    if "seed" in frame:  # every seed's profile: the median over the seeds of log10 ||.|| at each lag
        frame = frame.groupby(["model", "stage", "part", "lag"], sort=False, as_index=False)["log10_norm"].median()
    stages = [s for s in ("init", "trained") if s in set(frame["stage"])]
    fig, axes = new_figure(1, len(stages), width=6.2 * len(stages), height=4.8, squeeze=False)
    for ax, stage in zip(axes[0], stages, strict=True):
        sub = frame[frame["stage"] == stage]
        for name in dict.fromkeys(sub["model"]):
            m = sub[sub["model"] == name]
            state = m[m["part"] == "state"].sort_values("lag")
            ref = state["log10_norm"].iloc[0]
            ax.plot(state["lag"], 10.0 ** (state["log10_norm"] - ref), color=COLORS.get(name), lw=1.4,
                    label=_label(name))
            c = m[m["part"] == "c"].sort_values("lag")
            if len(c):
                ax.plot(c["lag"], 10.0 ** (c["log10_norm"] - ref), color=COLORS.get(name), lw=1.4, ls=":",
                        label=f"{_label(name)}: through the cell state c")
        ax.set(yscale="log", xlabel="lag k (steps back from T)",
               ylabel="||dL_T/dh_{T-k}|| / ||dL_T/dh_T||  (geometric mean; median over seeds)",
               title="at initialisation" if stage == "init" else "after training on the adding problem")
        ax.axhline(1.0, color="k", lw=0.6)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle("Gradient reaching back k steps, by cell (adding problem, L_T = last-step squared error)")
    return finish(fig, path)


@styled
def plot_adding(frame: pd.DataFrame, summary: dict, *, ax=None, path=None) -> Figure:
    """Figure 9: adding-problem MSE vs step (log scale), mean over seeds and each seed, baseline 1/6.

    ``frame`` has columns model, seed, step, mse, mse_smooth; ``summary`` is ``adding.json``.
    """
    fig, ax = single_axes(ax, width=8.5, height=5.0)
    models = summary["models"]
    for name in dict.fromkeys(frame["model"]):
        m = frame[frame["model"] == name]
        headline = name in summary["headline"]
        color = COLORS.get(name)
        for _, g in m.groupby("seed"):
            ax.plot(g["step"] + 1, g["mse_smooth"], color=color, lw=0.6 if headline else 0.9,
                    alpha=0.35 if headline else 0.8, ls="-" if headline else "--")
        if headline:
            mean = m.groupby("step")["mse_smooth"].mean()
            r = models[name]
            ax.plot(mean.index + 1, mean.values, color=color, lw=2.0,
                    label=f"{_label(name)}: test MSE {_fmt(r['test_mse_mean'])}, "
                          f"solved {r['solved_seeds']}/{r['num_seeds']}")
        else:
            r = models[name]
            ax.plot([], [], color=color, ls="--", label=f"{_label(name)} ({r['num_seeds']} seeds): test MSE "
                                                           f"{_fmt(r['test_mse_mean'])}, solved {r['solved_seeds']}")
    ax.axhline(summary["baseline_mse"], color="k", ls="--", lw=1.2, label="predict 1 (baseline): MSE 1/6")
    ax.axhline(summary["threshold"], color="k", ls=":", lw=1.0, label=f"MSE {summary['threshold']:g}")
    ax.set(xscale="log", yscale="log", xlabel="update step (Adam, fresh batch each; log scale)",
           ylabel=f"MSE on each step's unseen batch (running mean of {summary['smoothing_window']})",
           title=f"Adding problem, T = {summary['T']}: hidden {summary['hidden']}, batch {summary['batch']}, "
                 f"lr {summary['lr']:g}, clip {summary['clip_norm']:g}")
    ax.set_ylim(bottom=max(1e-4, float(np.nanmin(frame["mse_smooth"])) / 2), top=1.0)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)  # below: never over a curve
    return finish(fig, path)


@styled
def plot_adding_survival(times: dict, events: dict, budget: int, *, ax=None, path=None) -> Figure:
    """Figure 9b: the fraction of seeds not yet solved (MSE < 0.01) against the update step, per model.

    ``times[name]`` (seeds,) steps to solve, or the budget where a seed did not solve; ``events[name]`` (seeds,)
    bool, True where it solved. Kaplan-Meier curves (:func:`rnnjax.stats.kaplan_meier`), right-censored at
    the budget (a + per censored seed, at the budget, with its count); dotted: the 95% log-log band, where it
    is defined (0 < S < 1).
    """
    from rnnjax.stats import kaplan_meier

    fig, ax = single_axes(ax, width=8.5, height=5.0)
    for name, t in times.items():
        t, e = np.asarray(t, float), np.asarray(events[name], bool)
        x, surv, lo, hi = km_steps(kaplan_meier(t, e))
        color = COLORS.get(name)
        ax.step(x, surv, where="post", color=color, lw=1.8, label=f"{_label(name)}: solved {int(e.sum())}/{len(e)}")
        for band in (lo, hi):
            ax.step(x, band, where="post", color=color, lw=0.6, ls=":", alpha=0.7)
        if (~e).any():
            cens = t[~e]
            s_at = np.interp(cens, x, surv)
            ax.plot(cens, s_at, "+", color=color, ms=12, mew=2)
            ax.annotate(f"{int((~e).sum())} censored", (cens[0], s_at[0]), textcoords="offset points",
                        xytext=(-6, 4), ha="right", fontsize=7, color=color)
    ax.axvline(budget, color="k", lw=0.8, ls="--", label=f"budget {budget:,} updates (fixed before the runs)")
    ax.set(xlabel="update step (Adam, a fresh batch each)", ylabel="fraction of seeds not yet solved (MSE >= 0.01)",
           title="Adding problem: time to solve, Kaplan-Meier, censored at the budget (+)",
           xlim=(0, budget * 1.04), ylim=(-0.02, 1.04))
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    return finish(fig, path)
