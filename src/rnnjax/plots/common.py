"""Shared figure plumbing: matplotlib's object API only, a consistent style, atomic PNG saving.

Nothing here touches pyplot or the backend: figures are :class:`matplotlib.figure.Figure` objects
rendered by the Agg canvas when saved, so importing :mod:`rnnjax.plots` leaves a user's notebook
backend and pyplot state as they were. Every plot function returns its ``Figure`` (display it in a
notebook, or save it yourself) and writes a PNG only when given a ``path``; one-panel plots also
draw into a caller's ``ax=``.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rnnjax.io import atomic_write_bytes

STYLE = {
    "figure.dpi": 110,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "font.size": 10,
}


def styled(plot):
    """Run a plotting function under the project style (``matplotlib.rc_context``, restored afterwards)."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return plot(*args, **kwargs)

    return wrapper


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 6.4, height: float = 4.0, **kw):
    """A :class:`~matplotlib.figure.Figure` and its axes (``Figure.subplots``) under the project style."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height))
        return fig, fig.subplots(nrows, ncols, **kw)


def single_axes(ax, *, width: float, height: float):
    """``(fig, ax)``: the caller's ``ax`` and its figure, or a new one-panel figure when ``ax`` is None."""
    if ax is not None:
        return ax.figure, ax
    return new_figure(1, 1, width=width, height=height)


def finish(fig: Figure, path) -> Figure:
    """Save ``fig`` as PNG at ``path`` (atomically) unless ``path`` is None; return the Figure."""
    if path is not None:
        save_png(fig, path)
    return fig


def save_png(fig: Figure, path) -> Path:
    """Render ``fig`` to PNG with the Agg canvas and write it atomically; returns the path."""
    buf = io.BytesIO()
    FigureCanvasAgg(fig)  # attach the Agg canvas first: tight_layout measures text with its renderer
    with matplotlib.rc_context(STYLE):
        fig.tight_layout()
        fig.savefig(buf, format="png", bbox_inches="tight")  # on the Agg canvas; legends below the axes are kept
    return atomic_write_bytes(path, buf.getvalue())


def km_steps(km, end: float | None = None):
    """``(t, S, lo, hi)``: a :class:`rnnjax.stats.KaplanMeier` estimate as step arrays from t = 0 (S = 1),
    held to ``end`` when given, for ``step(where="post")``. The log-log band is undefined where S is 0 or 1
    (``kaplan_meier`` gives [0, 1] there): lo = hi = S at those steps, so no band is drawn."""
    tail = [] if end is None else [end]
    t = np.concatenate([[0.0], km.times, tail])
    s, lo, hi = (np.concatenate([[1.0], a, a[-1:] if tail else []]) for a in (km.survival, km.ci_low, km.ci_high))
    undefined = (s == 0.0) | (s == 1.0)
    return t, s, np.where(undefined, s, lo), np.where(undefined, s, hi)
