"""Figures of the gradient analysis: Figure 3 (||dL/dW_hh|| per training step), lag profiles,
Jacobian-product spectra, and the rho phase diagram. Inputs are plain NumPy arrays, so every figure
can be redrawn from the CSV files the experiments save; the multi-panel figures are made of the
one-panel plots of :mod:`rnnjax.plots.analysis`. ``path`` is a keyword everywhere (a PNG only when given)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from rnnjax.plots.analysis import colors as _colors
from rnnjax.plots.analysis import plot_lag_profile, plot_lyapunov_spectra, plot_product_spectra
from rnnjax.plots.common import finish, new_figure, single_axes, styled

REPORT_RHOS = (0.90, 0.99, 1.20)
NORM_LABELS = {"spec": r"$\|\partial L/\partial W_{hh}\|_2$ (spectral)",
               "fro": r"$\|\partial L/\partial W_{hh}\|_F$ (Frobenius)"}


@styled
def plot_grad_norm_history(curves: dict, *, norm: str = "spec", title: str | None = None, ax=None,
                           path=None) -> Figure:
    """Figure 3: per rho the median over seeds of the gradient norm per step, with a min-max band.

    ``curves`` maps rho -> dict(steps (K,), median (K,), low (K,), high (K,), seeds int, diverged str|None).
    """
    fig, ax = single_axes(ax, width=7.0, height=4.2)
    for color, (rho, c) in zip(_colors(len(curves)), sorted(curves.items()), strict=True):
        label = f"rho = {rho:g} ({c['seeds']} seeds)"
        if c.get("diverged"):
            label += f"; {c['diverged']}"
        if len(c["steps"]):
            ax.plot(c["steps"], c["median"], color=color, lw=1.6, label=label)
            ax.fill_between(c["steps"], c["low"], c["high"], color=color, alpha=0.2, lw=0)
        else:
            ax.plot([], [], color=color, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("training step (SGD update)")
    ax.set_ylabel(NORM_LABELS[norm] + ", log scale")
    ax.set_title(title or "Figure 3 reproduced: median over seeds, band = min..max")
    ax.legend(fontsize=8)
    return finish(fig, path)


@styled
def plot_lag_profiles(panels: list[dict], *, path=None) -> Figure:
    """Figure 4: per rho, ||dL_T/dh_{T-k}|| / ||dL_T/dh_T|| against the lag k (geometric means).

    Each panel dict: rho, k (K,), log_profile (K,) natural log of the ratio, log_bound (K,) for
    (gamma ||W_hh||_2)^k, log_sigma_max (K,) of the Jacobian products, lyap (top exponent), label.
    """
    fig, axes = new_figure(1, len(panels), width=4.2 * len(panels), height=3.8, squeeze=False)
    for ax, p in zip(axes[0], panels, strict=True):
        plot_lag_profile(p["k"], np.exp(p["log_profile"]), bound=np.exp(p["log_bound"]),
                         sigma_max=np.exp(p["log_sigma_max"]), lyapunov=p["lyap"],
                         label=p.get("label", f"rho = {p['rho']:g}"), ax=ax)
        ax.set_ylabel("gradient norm ratio to k = 0 (log scale)")
    return finish(fig, path)


@styled
def plot_jacobian_spectra(panels: list[dict], lyapunov: dict, *, path=None) -> Figure:
    """Figure 5: all singular values of the products P_k against k per rho, and the Lyapunov spectra.

    Each panel dict: rho, k (K,), log_sigma (K, S) natural logs (geometric means), log_bound (K,).
    ``lyapunov`` maps rho -> exponents (S,) in nats per step (median over seeds).
    """
    import matplotlib

    n = len(panels) + 1
    fig, axes = new_figure(1, n, width=4.0 * n, height=3.8, squeeze=False)
    for ax, p in zip(axes[0][:-1], panels, strict=True):
        S = p["log_sigma"].shape[1]
        plot_product_spectra(p["k"], p["log_sigma"], log_bound=p["log_bound"],
                             label=f"rho = {p['rho']:g}: all {S} singular values", ax=ax)
        ax.text(0.5, -0.32, "values far below the top are round-off of exact zeros\n"
                "(a ReLU Jacobian has rank = active units)", transform=ax.transAxes, fontsize=6.5, ha="center",
                va="top")
        bar = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(1, S),
                                           cmap=matplotlib.colors.ListedColormap(_colors(S)))
        fig.colorbar(bar, ax=ax, label="singular value index i (1 = largest)", fraction=0.05, pad=0.02,
                     ticks=np.unique(np.linspace(1, S, min(S, 5)).round().astype(int)))
    ax = axes[0][-1]
    plot_lyapunov_spectra({f"rho = {rho:g}": ex for rho, ex in sorted(lyapunov.items())}, ax=ax)
    ax.set_ylim(max(ax.get_ylim()[0], -6), None)
    ax.text(0.5, -0.32, "exponents off the bottom: collapsed directions (-inf, shown as log(tiny))",
            transform=ax.transAxes, fontsize=6.5, ha="center", va="top")
    return finish(fig, path)


@styled
def plot_phase_diagram(panels: list[dict], *, marks=REPORT_RHOS, path=None) -> Figure:
    """Figure 6: per activation, top Lyapunov exponent and lag-profile slope against rho, per length.

    Each panel dict: activation, rho (R,), lengths {T: dict(lyap (R,), slope (R,))} (NaN = not
    finite, left out), log_gamma_norm (R,) = log(gamma ||W_hh||_2), log_radius (R,).
    """
    fig, axes = new_figure(1, len(panels), width=5.6 * len(panels), height=4.2, squeeze=False)
    for ax, p in zip(axes[0], panels, strict=True):
        rho = p["rho"]
        for color, (T, v) in zip(_colors(len(p["lengths"])), sorted(p["lengths"].items()), strict=True):
            ax.plot(rho, v["lyap"], "-", color=color, lw=1.6, label=rf"$\lambda_1$, T = {T}")
            ax.plot(rho, v["slope"], "--", color=color, lw=1.0, label=f"lag-profile slope, T = {T}")
        ax.plot(rho, p["log_gamma_norm"], color="0.4", lw=1, label=r"$\log(\gamma\|W_{hh}\|_2)$ (report's rate)")
        ax.plot(rho, p["log_radius"], ":", color="0.4", lw=1, label=r"$\log$ spectral radius")
        ax.axhline(0.0, color="k", lw=0.8)
        for m in marks:
            ax.axvline(m, color="C3", lw=0.8, alpha=0.6)
        ax.text(marks[-1], ax.get_ylim()[1], " report's rho", color="C3", fontsize=7, va="top")
        ax.set_xlabel(r"$\rho$ (W_hh = $\rho$ W, W ~ N(0, 1/H))")
        ax.set_ylabel("growth rate (nats/step): < 0 vanishing, > 0 exploding")
        ax.set_title(f"{p['activation']}: where vanishing turns into exploding")
        ax.legend(fontsize=6.5)
    return finish(fig, path)
