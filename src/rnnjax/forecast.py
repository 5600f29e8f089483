"""One-step-ahead forecasting with a vanilla RNN (report §3): training over seeds, prediction, metrics.

Pure functions on arrays (no pandas, no matplotlib):

* :func:`fit_rnn_seeds` -- S initialisations trained in one vmapped, jitted program;
* :func:`predict_next` -- o_T of every window, the forecast of the next value (scaled);
* :func:`predict_prices` -- the same back in price units, through the train-fitted scaler
  (and p_{i-1} exp(r_i) when the model predicts log-returns);
* :func:`rmse`, :func:`mae` and :func:`persistence_forecast` (tomorrow's close = today's), the
  baseline every RNN number is reported beside (whether a difference in accuracy from it is more
  than noise: :func:`rnnjax.stats.diebold_mariano`).
"""

from __future__ import annotations

from functools import partial

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
