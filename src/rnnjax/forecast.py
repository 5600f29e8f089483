"""One-step-ahead forecasting with a vanilla RNN (report §3): training over seeds, prediction, metrics.

Pure functions on arrays (no pandas, no matplotlib):

* :func:`fit_rnn_seeds` -- S initialisations trained in one vmapped, jitted program;
* :func:`predict_next` -- o_T of every window, the forecast of the next value (scaled);
* :func:`predict_prices` -- the same back in price units, through the train-fitted scaler
  (and p_{i-1} exp(r_i) when the model predicts log-returns);
* :func:`rmse`, :func:`mae` and :func:`persistence_forecast` (tomorrow's close = today's), the
  baseline every RNN number is reported beside, and :func:`diebold_mariano` to tell whether a
  difference in accuracy from it is more than noise.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax.cells import RNNParams, init_rnn
from rnnjax.data.prices import ForecastData, values_to_prices
from rnnjax.forward import rnn_forward
from rnnjax.train import TrainHistory, train


def _scaled_errors(predicted, actual):
    """``(|p - y| / m, m)`` in float64 with m = max_i |p_i - y_i| over the last axis (1 where that is 0 or not
    finite), so neither squares nor sums of errors of any scale underflow or overflow."""
    with np.errstate(over="ignore", invalid="ignore"):  # a difference past 1.8e308 is inf, and stays so
        diff = np.abs(np.asarray(predicted, np.float64) - np.asarray(actual, np.float64))
        m = np.max(diff, axis=-1, keepdims=True) if diff.shape[-1] else np.ones(diff.shape[:-1] + (1,))
        m = np.where((m > 0) & np.isfinite(m), m, 1.0)
    return diff / m, m[..., 0]


def rmse(predicted, actual):
    """RMSE = sqrt(mean_i (p_i - y_i)^2) over the last axis (leading axes, e.g. seeds, are kept); exact at
    any scale (1e-300 or 1e300 errors), computed as m sqrt(mean_i (e_i / m)^2) with m = max_i |e_i|."""
    scaled, m = _scaled_errors(predicted, actual)
    return m * np.sqrt(np.mean(scaled**2, axis=-1))  # sqrt(1/M sum_i (p_i - y_i)^2), rescaled by m


def mae(predicted, actual):
    """MAE = mean_i |p_i - y_i| over the last axis; as :func:`rmse`, m mean_i |e_i| / m (no overflow of the sum)."""
    scaled, m = _scaled_errors(predicted, actual)
    return m * np.mean(scaled, axis=-1)  # 1/M sum_i |p_i - y_i|, rescaled by m


# Lag-1 autocorrelation of the loss differential above which no DM test is trusted: the HAC variance
# then rests on a handful of effectively independent observations (n (1 - r) / (1 + r) < 1/19 of n)
# and the test over-rejects badly (tests/test_forecast.py measures its size by simulation).
PERSISTENT_AUTOCORR = 0.9


class DMTest(NamedTuple):
    """A Diebold-Mariano test per series (leading axes, e.g. seeds, kept on every field)."""

    statistic: np.ndarray  # HLN-corrected DM, t(n - 1) under equal accuracy; < 0: ``predicted`` more accurate
    p_value: np.ndarray  # two-sided, from t(n - 1)
    lags: np.ndarray  # Bartlett truncation lag L of the long-run variance (int)
    lag1_autocorr: np.ndarray  # r_1 of the loss differential d
    reliable: np.ndarray  # bool: r_1 < PERSISTENT_AUTOCORR (else no DM test is trustworthy: see the ratio)


def autocovariances(d, max_lag: int) -> np.ndarray:
    """gamma_k = (1/n) sum_{i>k} (d_i - dbar)(d_{i-k} - dbar), k = 0..max_lag, over the last axis of d (..., n)."""
    d = np.asarray(d, np.float64)
    e = d - d.mean(-1, keepdims=True)
    n = d.shape[-1]
    return np.stack([np.sum(e[..., k:] * e[..., : n - k], -1) / n for k in range(max_lag + 1)], -1)


def newey_west_lags(d) -> np.ndarray:
    """Newey & West (1994) automatic Bartlett bandwidth, per series over the last axis of d (..., n).

    Pilot lags m = floor(4 (n/100)^(2/9)); s0 = gamma_0 + 2 sum_{j<=m} gamma_j, s1 = 2 sum_{j<=m} j gamma_j;
    bandwidth S = 1.1447 (s1/s0)^(2/3) n^(1/3) (NW 1994's Bartlett constants); the lag used is
    L = floor(S), at most n - 1 (a constant series gets L = 0), with the weights 1 - k/(L+1) of
    :func:`bartlett_long_run_variance`.
    """
    d = np.asarray(d, np.float64)
    n = d.shape[-1]
    m = min(int(4 * (n / 100) ** (2 / 9)), n - 1)  # pilot truncation (NW 1994, p. 641)
    g = autocovariances(d, m)
    j = np.arange(1, m + 1)
    s0 = g[..., 0] + 2 * g[..., 1:].sum(-1)  # s^(0) = sum_{|j|<=m} gamma_j
    s1 = 2 * (j * g[..., 1:]).sum(-1)  # s^(1) = sum_{|j|<=m} |j| gamma_j
    with np.errstate(divide="ignore", invalid="ignore"):
        S = 1.1447 * np.abs(s1 / s0) ** (2 / 3) * n ** (1 / 3)  # S = gamma_hat n^(1/3) (NW 1994, Bartlett)
    return np.clip(np.floor(np.nan_to_num(S, nan=0.0, posinf=n - 1)), 0, n - 1).astype(int)


def bartlett_long_run_variance(d, lags) -> np.ndarray:
    """Newey-West long-run variance gamma_0 + 2 sum_{k=1}^{L} (1 - k/(L+1)) gamma_k (Newey & West 1987).

    ``d`` (..., n); ``lags`` an int or an int array broadcasting to d's leading axes.
    """
    lags = np.asarray(lags, int)
    g = autocovariances(d, int(lags.max(initial=0)))
    k = np.arange(g.shape[-1])
    w = np.clip(1.0 - k / (lags[..., None] + 1.0), 0.0, None)  # Bartlett weights, 0 beyond lag L
    w[..., 0] = 0.5  # gamma_0 counted once: 2 * 0.5
    return 2.0 * np.sum(w * g, -1)  # gamma_0 + 2 sum_k w_k gamma_k


def student_t_two_sided_p(t, df) -> np.ndarray:
    """P(|T| >= |t|) for T ~ t(df): the regularised incomplete beta I_{df/(df+t^2)}(df/2, 1/2).

    (Abramowitz & Stegun 26.7.1.) Evaluated by ``jax.scipy.special.betainc`` in
    float64, so p-values down to ~1e-300 keep their digits; NaN where t is NaN.
    """
    t = np.asarray(t, np.float64)
    df = np.broadcast_to(np.asarray(df, np.float64), t.shape)
    with np.errstate(over="ignore"):
        x = df / (df + t * t)  # p = I_x(df/2, 1/2) (A&S 26.7.1); x = 0 for |t| = inf
    with jax.enable_x64(True):
        p = jax.scipy.special.betainc(jnp.asarray(df / 2, jnp.float64), jnp.asarray(0.5, jnp.float64),
                                      jnp.asarray(np.nan_to_num(x, nan=1.0), jnp.float64))
        p = np.array(p, np.float64)
    p[np.isnan(t)] = np.nan
    return p


def diebold_mariano(predicted, baseline, actual, *, lags=None) -> DMTest:
    """Diebold-Mariano test of equal squared-error accuracy of one-step forecasts against ``baseline``.

    d_i = (p_i - y_i)^2 - (b_i - y_i)^2 over the last axis (M forecasts), tested by :func:`dm_test`;
    statistic < 0 means ``predicted`` is the more accurate. Leading axes (e.g. seeds) are kept.
    """
    a = np.asarray(actual, np.float64)
    d = (np.asarray(predicted, np.float64) - a) ** 2 - (np.asarray(baseline, np.float64) - a) ** 2  # d_i
    return dm_test(d, lags=lags)


def dm_test(d, *, lags=None) -> DMTest:
    """The Diebold-Mariano test of E[d] = 0 for a loss differential d (..., M), HAC and small-sample corrected.

    DM = mean(d) / sqrt(LRV / M) with the Newey-West (Bartlett) long-run variance LRV of d
    (:func:`bartlett_long_run_variance`), its lag from :func:`newey_west_lags` unless ``lags`` is
    given (Diebold & Mariano 1995); then the Harvey, Leybourne & Newbold (1997) factor
    sqrt((M + 1 - 2h + h(h - 1)/M) / M) with h = 1, and a two-sided p-value from t(M - 1). A
    differential whose lag-1 autocorrelation reaches :data:`PERSISTENT_AUTOCORR` is flagged
    ``reliable=False``: no variance estimate from one path of such a series is trustworthy (the
    test over-rejects), so the size of the error ratio has to carry the comparison. A constant d
    (identical forecasts) gives NaN statistic and p-value.
    """
    d = np.asarray(d, np.float64)
    M = d.shape[-1]
    L = newey_west_lags(d) if lags is None else np.broadcast_to(np.asarray(lags, int), d.shape[:-1])
    lrv = bartlett_long_run_variance(d, L)
    g = autocovariances(d, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        dm = np.mean(d, -1) / np.sqrt(lrv / M)  # DM = dbar / sqrt(LRV / M) (Diebold & Mariano 1995)
        r1 = g[..., 1] / g[..., 0]  # lag-1 autocorrelation of d
    h = 1  # one-step-ahead forecasts
    stat = dm * np.sqrt((M + 1 - 2 * h + h * (h - 1) / M) / M)  # HLN (1997) small-sample factor
    stat = np.where(lrv > 0, stat, np.nan)
    return DMTest(statistic=stat, p_value=student_t_two_sided_p(stat, M - 1), lags=np.asarray(L),
                  lag1_autocorr=r1, reliable=np.asarray(r1 < PERSISTENT_AUTOCORR))


def persistence_forecast(prices, days):
    """The naive forecast p_hat_i = p_{i-1} (tomorrow's close = today's) for target days ``days``."""
    return np.asarray(prices, np.float64)[np.asarray(days) - 1]


@partial(jax.jit, static_argnames=("hidden_size", "loss", "num_steps", "optimizer", "clip_norm", "activation",
                                   "method"))
def fit_rnn_seeds(keys: jax.Array, xs: jax.Array, targets: jax.Array, learning_rate, *, hidden_size: int,
                  loss: str, num_steps: int, optimizer: str = "sgd", clip_norm: float | None = None,
                  activation: str = "tanh", method: str = "auto") -> tuple[RNNParams, TrainHistory]:
    """Train one RNN per PRNG key, all in one program: ``jax.vmap`` over the keys of init + :func:`train`.

    Args:
      keys: (S, 2) PRNG keys (or typed keys (S,)); seed s is initialised by
        ``init_rnn(keys[s], D, hidden_size, O)`` (LeCun-normal W_xh, W_ho; Gaussian W_hh).
      xs: training items as :func:`rnnjax.train` takes them, e.g. (1, B, T, D) for full batch.
      targets: their targets, e.g. (1, B, O) for ``mse_last`` or (1, B, T, O) for ``mse``.
      learning_rate: step size, a traced scalar (a new value does not recompile; the caller checks > 0).
      hidden_size, loss, num_steps, optimizer, clip_norm, activation, method: see :func:`rnnjax.train`.

    Returns:
      ``(params, history)`` with a leading seed axis S on every leaf.
    """
    D, O = xs.shape[-1], targets.shape[-1]

    def one(key):
        params = init_rnn(key, D, hidden_size, O)
        return train(params, xs, targets, loss=loss, num_steps=num_steps, learning_rate=learning_rate,
                     optimizer=optimizer, clip_norm=clip_norm, activation=activation, method=method)

    return jax.vmap(one)(keys)


@partial(jax.jit, static_argnames=("activation",))
def predict_next(params: RNNParams, xs: jax.Array, *, activation: str = "tanh") -> jax.Array:
    """Forecasts o_T (M, O) of windows ``xs`` (M, T, D): the output at each window's last step (§3).

    Each window starts from h_0 = 0, as in training; ``jax.vmap`` of :func:`rnnjax.rnn_forward`.
    """
    last = lambda x: rnn_forward(params, x, activation=activation)[1][-1]  # o_T = h_T W_ho + b_o
    return jax.vmap(last)(xs)


@partial(jax.jit, static_argnames=("activation",))
def predict_next_seeds(params: RNNParams, xs: jax.Array, *, activation: str = "tanh") -> jax.Array:
    """:func:`predict_next` for stacked parameters (leading seed axis S): (S, M, O)."""
    return jax.vmap(lambda p: predict_next(p, xs, activation=activation))(params)


def predict_prices(params: RNNParams, data: ForecastData, prices, *, split: str = "test",
                   activation: str = "tanh") -> np.ndarray:
    """Price forecasts (S, M) for the ``"train"``, ``"test"`` or ``"all"`` (train then test) target days.

    ``params`` are stacked (leading seed axis S).

    The scaled forecast is inverted with the train scaler; for ``target="returns"`` the price is
    rebuilt as p_{i-1} exp(r_hat_i) (:func:`rnnjax.data.prices.values_to_prices`).
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    xs, days = {"train": (data.x_train, data.train_days), "test": (data.x_test, data.test_days),
                "all": (np.concatenate([data.x_train, data.x_test]),
                        np.concatenate([data.train_days, data.test_days]))}[split]
    scaled = np.asarray(predict_next_seeds(params, jnp.asarray(xs), activation=activation))[..., 0]
    return values_to_prices(data, prices, days, scaled)


def seed_summary(values, ok) -> dict:
    """Mean, min, max over the seeds marked ``ok`` (bool (S,)), and every seed's value (None if not ok)."""
    values, ok = np.asarray(values, np.float64), np.asarray(ok, bool)
    good = values[ok]
    stat = lambda f: float(f(good)) if good.size else None
    return {"mean": stat(np.mean), "min": stat(np.min), "max": stat(np.max),
            "std": stat(np.std), "per_seed": [float(v) if k else None for v, k in zip(values, ok, strict=True)]}
