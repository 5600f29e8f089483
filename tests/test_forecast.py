"""Forecast metrics, persistence, prediction with a trained RNN, training over seeds in one program.
(The Diebold-Mariano test and HAC variances: tests/test_stats.py.)"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from rnnjax import forecast as F
from rnnjax import init_rnn, train
from rnnjax.data.prices import make_forecast_data, minmax_unscale

H = 3  # the hidden size of every RNN below
# jitted once: eager JAX compiles every primitive of the init separately, which is what costs in tests
_init_rnn = jax.jit(init_rnn, static_argnums=(1, 2, 3))
_two_inits = jax.jit(lambda key: jax.vmap(lambda k: init_rnn(k, 1, H, 1))(jax.random.split(key, 2)))


def test_rmse_mae_hand_case():
    pred, actual = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 5.0])  # errors -1, 0, -2
    assert F.rmse(pred, actual) == pytest.approx(np.sqrt(5.0 / 3.0))
    assert F.mae(pred, actual) == pytest.approx(1.0)
    two = F.rmse(np.stack([pred, actual]), actual)  # leading axes (seeds) are kept
    np.testing.assert_allclose(two, [np.sqrt(5.0 / 3.0), 0.0])


def test_persistence_hand_case():
    prices = np.array([10.0, 12.0, 11.0, 15.0])
    days = np.array([2, 3])  # forecast days 2 and 3 from days 1 and 2
    naive = F.persistence_forecast(prices, days)
    assert naive.tolist() == [12.0, 11.0]
    actual = prices[days]  # 11, 15: errors +1, -4
    assert F.rmse(naive, actual) == pytest.approx(np.sqrt(17.0 / 2.0))
    assert F.mae(naive, actual) == pytest.approx(2.5)


def _numpy_last_output(p, x):
    """o_T of one window by the §1.2 equations, written out with NumPy (independent of lax.scan)."""
    h = np.zeros(p.W_hh.shape[0])
    for x_t in np.asarray(x, np.float64):
        h = np.tanh(x_t @ np.asarray(p.W_xh) + h @ np.asarray(p.W_hh) + np.asarray(p.b_h))
    return h @ np.asarray(p.W_ho) + np.asarray(p.b_o)


def test_predict_next_is_the_last_output():
    params = _init_rnn(jax.random.PRNGKey(1), 1, H, 1)
    params = params._replace(b_h=jax.device_put(np.full(H, 0.1, np.float32)),
                             b_o=jax.device_put(np.array([0.3], np.float32)))
    xs = np.random.default_rng(2).uniform(size=(3, 5, 1)).astype(np.float32)
    got = np.asarray(F.predict_next(params, jax.device_put(xs)))
    want = np.stack([_numpy_last_output(params, x) for x in xs])
    assert got.shape == (3, 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def small():
    """A short series windowed like the experiment: 8 train windows of length 5."""
    prices = 10.0 + np.cumsum(np.sin(np.arange(20.0)) + 0.3)
    return prices, make_forecast_data(prices, lookback=5, train_fraction=0.65)


def test_fit_over_seeds_equals_separate_runs(small):
    _, d = small
    xs, ys = jax.device_put((d.x_train[None], d.y_train[None]))
    keys_np = np.stack([np.asarray(jax.random.PRNGKey(3)), np.asarray(jax.random.PRNGKey(4))])
    keys = jax.device_put(keys_np)
    opts = dict(loss="mse_last", num_steps=15, clip_norm=0.5)
    params, hist = F.fit_rnn_seeds(keys, xs, ys, 0.05, hidden_size=H, **opts)
    params, hist = jax.tree.map(np.asarray, (params, hist))  # read in NumPy: no eager program per index
    for s in range(2):
        one, h1 = train(_init_rnn(jax.device_put(keys_np[s]), 1, H, 1), xs, ys, learning_rate=0.05, **opts)
        for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(params), strict=True):
            np.testing.assert_allclose(b[s], a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(hist.loss[s], h1.loss, rtol=1e-5)
    assert hist.loss.shape == (2, 15) and bool(hist.finite.all())
    assert float(hist.grad_norm_clipped.max()) <= 0.5 + 1e-6 < float(hist.grad_norm.max())  # clipping was active
    assert float(hist.loss[:, -1].max()) < float(hist.loss[:, 0].min())  # it learns


def test_predict_prices_inverts_the_scaler(small):
    prices, d = small
    params = _two_inits(jax.random.PRNGKey(5))
    got = F.predict_prices(params, d, prices, split="test")
    assert got.shape == (2, len(d.test_days))
    for s in range(2):
        one = jax.tree.map(lambda a, s=s: np.asarray(a)[s], params)
        scaled = np.stack([_numpy_last_output(one, x) for x in d.x_test])[:, 0]
        np.testing.assert_allclose(got[s], minmax_unscale(d.scaler, scaled), rtol=1e-5)
    with pytest.raises(ValueError, match="split"):
        F.predict_prices(params, d, prices, split="valid")


def test_predict_prices_rebuilds_from_returns(small):
    prices, _ = small
    d = make_forecast_data(prices, lookback=5, train_fraction=0.65, target="returns")
    params = _two_inits(jax.random.PRNGKey(6))
    got = np.asarray(F.predict_prices(params, d, prices, split="test"))[0]
    one = jax.tree.map(lambda a: np.asarray(a)[0], params)
    scaled = np.stack([_numpy_last_output(one, x) for x in d.x_test])[:, 0]
    want = prices[d.test_days - 1] * np.exp(minmax_unscale(d.scaler, scaled))  # p_{i-1} exp(r_hat_i)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_seed_summary_skips_failed_seeds():
    s = F.seed_summary([1.0, 100.0, 3.0], [True, False, True])
    assert s == {"mean": 2.0, "min": 1.0, "max": 3.0, "std": 1.0, "per_seed": [1.0, None, 3.0]}
    assert F.seed_summary([1.0], [False])["mean"] is None
