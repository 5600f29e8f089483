"""Figures of Experiment 1 (report §3): training curves (Figure 1) and the test-range forecast (Figure 2).

Both take plain arrays (as read back from the experiment's CSVs), so a figure can be redrawn
without retraining.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from rnnjax.plots.common import finish, new_figure, styled


@styled
def plot_training(losses: Sequence[np.ndarray], grad_norms: Sequence[np.ndarray],
                  clipped_norms: Sequence[np.ndarray], *, clip_norm: float | None, path=None, title: str = "",
                  loss_label: str = "training loss (scaled units)") -> Figure:
    """Figure 1: batch loss and global gradient norm (before/after clipping) vs epoch, one line per seed.

    Args:
      losses, grad_norms, clipped_norms: one 1-D array per seed (a diverged seed's arrays stop at
        its last finite epoch); epochs are numbered from 1.
      clip_norm: the clipping threshold tau, drawn as a dashed line (None: no clipping).
      path: PNG file to write, or None (the Figure is returned either way).
    """
    fig, (ax_loss, ax_grad) = new_figure(1, 2, width=11.0, height=4.0)
    several = len(losses) > 1
    for s, (loss, gn, gc) in enumerate(zip(losses, grad_norms, clipped_norms, strict=True)):
        epochs = np.arange(1, len(loss) + 1)
        lw, alpha = (1.0, 0.8) if several else (1.5, 1.0)
        seed_label = f"seed {s}" if several else None
        ax_loss.plot(epochs, loss, lw=lw, alpha=alpha, label=seed_label)
        line = ax_grad.plot(epochs, gn, lw=lw, alpha=alpha,
                            label=None if s else "before clipping" + (" (colours: seeds)" if several else ""))[0]
        if clip_norm is not None:
            ax_grad.plot(epochs, gc, lw=lw, ls=":", color=line.get_color(), label=None if s else "after clipping")
    ax_loss.set(xlabel="epoch", ylabel=loss_label, yscale="log", title="Training loss")
    if several:  # legends go below the axes: never over a curve or the tau line
        ax_loss.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4)
    if clip_norm is not None:
        ax_grad.axhline(clip_norm, color="k", ls="--", lw=1, label=f"clipping threshold tau = {clip_norm:g}")
    ax_grad.set(xlabel="epoch", ylabel="global gradient norm ||g||_2", yscale="log",
                title="Gradient norm (clipping at tau)")
    top = max([float(np.max(g)) for g in grad_norms if len(g)] + [clip_norm or 0.0])
    if np.isfinite(top) and top > 0:
        ax_grad.set_ylim(top=top * 1.6)  # the tau line inside the axes, not on its edge
    for ax in (ax_loss, ax_grad):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax_grad.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    if title:
        fig.suptitle(title)
    return finish(fig, path)


@styled
def plot_forecast(context_dates, context_close, test_dates, actual, predicted: np.ndarray, persistence, *,
                  path=None, title: str = "", rmse: float | None = None, persistence_rmse: float | None = None,
                  train_max: float | None = None, currency: str = "price units",
                  zoom_days: int | None = None) -> Figure:
    """Figure 2: actual closes, the RNN's forecast (one line per seed) and persistence on the test range.

    Args:
      context_dates, context_close: the tail of the train part, drawn for context.
      test_dates, actual: the test days and their closes (M,).
      predicted: (S, M) forecasts, one row per seed (mean drawn thick when S > 1; S may be 0).
      persistence: (M,) the naive forecast p_{i-1}.
      rmse, persistence_rmse: shown in the legend when given (``rmse``: the seeds' mean RMSE; the mean
        forecast's line is labelled with its own RMSE, computed here).
      train_max: the largest train close -- the scaler's upper bound -- drawn as a dotted line.
      currency: y-axis unit.
    """
    predicted = np.atleast_2d(np.asarray(predicted))
    if zoom_days:  # a second panel: the last days, where forecasts that track the price can be told apart
        fig, (ax, zoom) = new_figure(2, 1, width=11.0, height=8.0)
    else:
        fig, ax = new_figure(1, 1, width=11.0, height=4.5)
    ax.plot(context_dates, context_close, color="0.55", lw=1.0, label="actual (train tail)")
    ax.plot(test_dates, actual, color="k", lw=1.2, label="actual (test)", zorder=4)  # on top of the forecasts
    ax.plot(test_dates, persistence, color="tab:green", lw=0.9, ls="--",
            label="persistence p(t-1)" + (f", RMSE {persistence_rmse:.2f}" if persistence_rmse is not None else ""))
    if len(predicted) == 0 or predicted.size == 0:
        pass  # no seed stayed finite: nothing to draw but the data and the baseline
    elif len(predicted) == 1:
        ax.plot(test_dates, predicted[0], color="tab:red", lw=1.2,
                label="RNN forecast" + (f", RMSE {rmse:.2f}" if rmse is not None else ""))
    else:
        for s, row in enumerate(predicted):
            ax.plot(test_dates, row, color="tab:red", lw=0.6, alpha=0.35,
                    label=(f"RNN, each of {len(predicted)} seeds" + (f" (their mean RMSE {rmse:.2f})"
                                                                      if rmse is not None else "")) if s == 0 else None)
        mean = predicted.mean(0)
        own = float(np.sqrt(np.mean((mean - np.asarray(actual)) ** 2)))  # RMSE of the line drawn (report §3)
        ax.plot(test_dates, mean, color="tab:red", lw=1.5,
                label=f"RNN, mean forecast of the seeds (its RMSE {own:.2f})")
    if train_max is not None:
        ax.axhline(train_max, color="tab:purple", lw=0.8, ls=":", label=f"train maximum {train_max:.2f}")
    if len(test_dates):
        ax.axvline(test_dates[0], color="0.3", lw=0.8, ls=":", label="train | test split")
    ax.set(xlabel="date", ylabel=f"close ({currency})", title=title or "Next-day close: test range")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    if zoom_days:
        last = slice(max(0, len(test_dates) - zoom_days), None)
        d = np.asarray(test_dates)[last]
        zoom.plot(d, np.asarray(actual)[last], "o-", color="k", ms=2.5, lw=1.0, label="actual", zorder=4)
        zoom.plot(d, np.asarray(persistence)[last], "s--", color="tab:green", ms=2, lw=0.8, label="persistence")
        if predicted.size:
            zoom.plot(d, predicted.mean(0)[last], "^-", color="tab:red", ms=2, lw=0.8,
                      label="RNN" + (" (mean of the seeds)" if len(predicted) > 1 else ""))
        zoom.set(xlabel="date", ylabel=f"close ({currency})",
                 title=f"The last {len(d)} test days: each forecast is close to the day before's price")
        zoom.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    return finish(fig, path)
