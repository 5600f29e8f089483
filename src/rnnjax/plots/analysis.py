"""Figures of the analysis functions' own outputs: plain arrays in, one panel out.

Each takes what :mod:`rnnjax.analysis` returns -- a lag profile ``(lags, values)``, Lyapunov
exponents, the singular values of Jacobian products, a rho x length grid of growth rates -- draws
one panel into ``ax`` (a new figure when None) and writes a PNG only when given ``path``. The
experiments' multi-panel figures are built from these.

    lags = np.arange(T); fig = plot_lag_profile(lags, np.exp(rnnjax.lag_profile(p, xs, ys, log=True)))
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from rnnjax.plots.common import finish, single_axes, styled

LN10 = np.log(10.0)


def colors(n: int) -> list:
    """``n`` colours along viridis (its bright yellow end left out, so every line reads on white)."""
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.0, 0.85, max(n, 1))]


@styled
def plot_lag_profile(lags, values, *, bound=None, sigma_max=None, lyapunov=None, label: str | None = None,
                     ax=None, path=None) -> Figure:
    """||dL_T/dh_{T-k}|| (or its ratio to k = 0) against the lag k, on a log scale (report §4.1).

    Args:
      lags: (K,) lags k.
      values: (K,) the measured norms (:func:`rnnjax.lag_profile`; ``exp`` of the log version).
      bound: optional (K,) the report's bound (gamma ||W_hh||_2)^k (:func:`rnnjax.report_bound`).
      sigma_max: optional (K,) the largest singular value of J_T ... J_{T-k+1}.
      lyapunov: optional top exponent lambda_1 (nats/step), drawn as e^{lambda_1 k}.
      label: the panel's title.
    """
    fig, ax = single_axes(ax, width=4.6, height=3.8)
    lags = np.asarray(lags)
    ax.plot(lags, values, lw=2, label=r"measured $\|\partial L_T/\partial h_{T-k}\|$")
    if sigma_max is not None:
        ax.plot(lags, sigma_max, lw=1, ls="-.", label=r"$\sigma_{max}(J_T\cdots J_{T-k+1})$")
    if bound is not None:
        ax.plot(lags, bound, "k--", lw=1, label=r"report bound $(\gamma\|W_{hh}\|_2)^k$")
    if lyapunov is not None:
        ax.plot(lags, np.exp(lyapunov * lags), ":", color="C3", lw=1.5,
                label=rf"$e^{{\lambda_1 k}}$, $\lambda_1$ = {lyapunov:.3f} nats/step")
    ax.set_yscale("log")
    ax.set_xlabel("lag k (steps back from T)")
    ax.set_ylabel("gradient norm (log scale)")
    if label:
        ax.set_title(label)
    ax.legend(fontsize=7)
    return finish(fig, path)


@styled
def plot_product_spectra(lags, log_sigma, *, log_bound=None, label: str | None = None, ax=None,
                         path=None) -> Figure:
    """All singular values of the Jacobian products P_k = J_T ... J_{T-k+1} against k, log10 scale.

    ``log_sigma`` (K, S) natural logs (:func:`rnnjax.product_log_singular_values`), one line per index i
    coloured from the largest (dark) to the smallest; ``log_bound`` (K,) natural log of the report's bound.
    """
    fig, ax = single_axes(ax, width=4.6, height=3.8)
    log_sigma = np.asarray(log_sigma)
    S = log_sigma.shape[1]
    for i, color in zip(range(S), colors(S), strict=True):
        ax.plot(lags, log_sigma[:, i] / LN10, color=color, lw=0.7)
    if log_bound is not None:
        ax.plot(lags, np.asarray(log_bound) / LN10, "k--", lw=1.2, label=r"bound $k\log_{10}(\gamma\|W_{hh}\|_2)$")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16))  # below the axes, not on curves
    ax.set_xlabel("lag k")
    ax.set_ylabel(r"$\log_{10}\sigma_i(J_T\cdots J_{T-k+1})$")
    ax.set_title(label or f"all {S} singular values", fontsize=9)
    ax.set_ylim(max(ax.get_ylim()[0], -40), None)
    return finish(fig, path)


@styled
def plot_lyapunov_spectra(exponents: dict, *, ax=None, path=None) -> Figure:
    """Lyapunov spectra: ``exponents`` maps a label (e.g. rho) to (S,) exponents in nats per step, largest
    first (:func:`rnnjax.lyapunov_spectrum`); one line each against the index i, with the zero line."""
    fig, ax = single_axes(ax, width=4.6, height=3.8)
    for color, (name, ex) in zip(colors(len(exponents)), exponents.items(), strict=True):
        ex = np.asarray(ex)
        ax.plot(np.arange(1, len(ex) + 1), ex, "o-", ms=2, color=color, label=str(name))
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel("exponent index i")
    ax.set_ylabel(r"Lyapunov exponent $\lambda_i$ (nats/step)")
    ax.set_title("Lyapunov spectra (QR method)", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    return finish(fig, path)


@styled
def plot_growth_grid(rhos, lengths, rates, *, label: str = "top Lyapunov exponent", ax=None,
                     path=None) -> Figure:
    """A rho x length grid of growth rates (nats/step; < 0 vanishing, > 0 exploding) as a diverging heat map.

    ``rates`` (R, L) for ``rhos`` (R,) and sequence lengths ``lengths`` (L,); NaN (not finite) is left blank.
    The colour scale is symmetric about 0, so the colour says which side of the edge of chaos a cell is on.
    """
    import matplotlib

    fig, ax = single_axes(ax, width=5.6, height=4.2)
    rates = np.asarray(rates, float)
    finite = rates[np.isfinite(rates)]
    top = float(np.max(np.abs(finite))) if finite.size else 1.0
    image = ax.imshow(rates, aspect="auto", origin="lower", cmap="RdBu_r", interpolation="nearest",
                      norm=matplotlib.colors.TwoSlopeNorm(0.0, -(top or 1.0), top or 1.0),
                      extent=(-0.5, len(lengths) - 0.5, float(np.min(rhos)), float(np.max(rhos))))
    ax.set_xticks(range(len(lengths)), [str(T) for T in lengths])
    ax.set_xlabel("sequence length T (steps)")
    ax.set_ylabel(r"$\rho$")
    fig.colorbar(image, ax=ax, label=f"{label} (nats/step)")
    return finish(fig, path)
