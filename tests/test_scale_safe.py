"""Numbers that cannot underflow or overflow into a plausible value: the spectral radius, the Lyapunov growth
rates and the forecast errors at 1e-30 / 1e30 (float32) and 1e-300 / 1e300 (float64) scales, each against a
float64 reference computed here (numpy's eigvals and QR, closed forms)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax import forecast, init_rnn, lyapunov_spectrum
from rnnjax.analysis import lyapunov_of
from rnnjax.cells import spectral_radius

A = np.random.default_rng(0).normal(size=(6, 6)) / np.sqrt(6)  # a fixed, generic matrix


@pytest.mark.parametrize("scale", [1e-30, 1e30, 1.0])
def test_spectral_radius_is_exact_at_any_float32_scale(scale):
    W = (A * scale).astype(np.float32)
    want = np.max(np.abs(np.linalg.eigvals(W.astype(np.float64))))  # float64 reference of the same matrix
    got = float(spectral_radius(jnp.asarray(W)))
    assert got == pytest.approx(want, rel=1e-5)
    assert got <= np.linalg.norm(W.astype(np.float64), 2) * (1 + 1e-5)  # rho(W) <= ||W||_2, also at 1e-30


def test_spectral_radius_of_zero_and_in_float64(x64):
    assert float(spectral_radius(np.zeros((3, 3)))) == 0.0
    for scale in (1e-300, 1e300):
        got = float(spectral_radius(jnp.asarray(A * scale)))
        assert got == pytest.approx(np.max(np.abs(np.linalg.eigvals(A))) * scale, rel=1e-12)


def _benettin(params, xs, num, activation):
    """float64 reference: lambda_i = (1/T) sum_t log |R_t[i, i]| with J_t = diag(f'(a_t)) W_hh^T (numpy QR)."""
    W_xh, W_hh, b_h = (np.asarray(a, np.float64) for a in (params.W_xh, params.W_hh, params.b_h))
    f, df = {"tanh": (np.tanh, lambda a: 1 - np.tanh(a) ** 2), "relu": (lambda a: np.maximum(a, 0), lambda a: a > 0)
             }[activation]
    h, Q, total = np.zeros(W_hh.shape[0]), np.eye(W_hh.shape[0], num), np.zeros(num)
    for x in np.asarray(xs, np.float64):
        a = x @ W_xh + h @ W_hh + b_h  # h_t = f(x_t W_xh + h_{t-1} W_hh + b_h) (report §2.1)
        Q, R = np.linalg.qr(df(a)[:, None] * W_hh.T @ Q)
        total += np.log(np.abs(np.diag(R)))
        h = f(a)
    return np.sort(total / len(xs))[::-1]


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("num", [1, 2])
def test_lyapunov_growth_rates_do_not_underflow_at_rho_1e_30(activation, num):
    params = init_rnn(jax.random.PRNGKey(0), 3, 8, 2, rho=1e-30)
    xs = np.random.default_rng(1).standard_normal((40, 3), np.float32)  # test inputs: a transfer, no compile
    got = np.asarray(lyapunov_spectrum(params, xs, activation=activation, num=num))
    want = _benettin(params, xs, num, activation)
    assert want[0] == pytest.approx(-69.5, abs=1.0)  # log(1e-30) = -69.08, not the float32 floor -87.34
    np.testing.assert_allclose(got, want, atol=1e-3)


@pytest.mark.parametrize("num", [1, 3])
def test_lyapunov_growth_rates_do_not_overflow_at_1e30(num):
    M = (A[:4, :4] * 1e30).astype(np.float32)  # a linear map with entries ~1e30: (J Q)^2 overflows float32
    step = lambda h, x: h @ jnp.asarray(M) + x
    got = np.asarray(lyapunov_of(step, np.zeros(4, np.float32), np.zeros((5, 4), np.float32), num=num))  # state: 0
    Q, total = np.eye(4, num), np.zeros(num)
    for _ in range(5):
        Q, R = np.linalg.qr(M.astype(np.float64).T @ Q)
        total += np.log(np.abs(np.diag(R)))
    want = np.sort(total / 5)[::-1]
    assert np.all(np.isfinite(got)) and want[0] > 60
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("scale", [2.0**-990, 2.0**990, 1e-300, 1e300])
def test_rmse_and_mae_are_exact_at_any_float64_scale(scale):
    errors = np.random.default_rng(1).normal(size=(3, 50))  # 3 series (e.g. seeds) of 50 errors
    want_rmse = np.sqrt(np.mean(errors**2, axis=-1)) * scale  # unit-scale closed form, scaled after
    want_mae = np.mean(np.abs(errors), axis=-1) * scale
    predicted, actual = errors * scale, np.zeros_like(errors)
    np.testing.assert_allclose(forecast.rmse(predicted, actual), want_rmse, rtol=1e-14)
    np.testing.assert_allclose(forecast.mae(predicted, actual), want_mae, rtol=1e-14)


def test_rmse_hand_computed_and_non_finite_stays_non_finite():
    assert forecast.rmse([3e-300, -4e-300], [0, 0]) == pytest.approx(np.sqrt(12.5) * 1e-300, rel=1e-15)
    assert forecast.mae([3e300, -4e300], [0, 0]) == pytest.approx(3.5e300, rel=1e-15)
    assert forecast.rmse([1e308, 1e308], [-1e308, -1e308]) == np.inf  # the difference itself overflows
    assert np.isnan(forecast.rmse([np.nan, 1.0], [0.0, 0.0]))
    np.testing.assert_array_equal(forecast.rmse(np.zeros((2, 4)), np.zeros((2, 4))), [0.0, 0.0])


def test_gradient_stabilitys_measures_at_rho_1e_30_radius_below_norm_exponent_off_the_floor():
    """What ``gradient_stability --rhos 1e-30`` reports at initialisation: rho(W_hh) <= ||W_hh||_2 (was 1.1e-12
    against 1.9e-30) and a top exponent near log(1e-30) + log ||W||-ish, not the float32 floor -87.34."""
    from rnnjax.sweeps import stability_sweep

    targets = np.arange(30, dtype=np.int32) % 5
    xs = np.eye(5, dtype=np.float32)[targets]  # one-hot inputs, built in NumPy
    m = stability_sweep(np.array([1e-30]), np.arange(2), xs, targets, hidden_size=6, output_size=5,
                        activation="relu")
    log_radius, log_norm = np.asarray(m["log_radius"]), np.asarray(m["log_norm"])
    assert np.all(log_radius <= log_norm + 1e-5) and np.all(log_norm < -60)
    top = np.asarray(m["lyap_top"])
    assert np.all(np.isfinite(top)) and np.all(top > np.log(np.finfo(np.float32).tiny) + 5)


@pytest.mark.parametrize("num", [1, 3])
def test_the_rescaled_growth_rates_keep_their_exact_gradient(x64, num):
    """d/dW_hh of sum_i lambda_i (what flossing descends) against central finite differences in float64, at
    rho = 1e-30 as at rho = 1: the rescaling by max |Q_ji| is a constant of the derivative, not a new term."""
    from rnnjax.analysis import rnn_step

    xs = np.random.default_rng(1).standard_normal((6, 2))  # test inputs: a transfer, no compile
    for rho in (1.0, 1e-30):
        p = init_rnn(jax.random.PRNGKey(0), 2, 5, 1, rho=rho, dtype=jnp.float64)
        f = lambda W, p=p: jnp.sum(lyapunov_of(rnn_step(p._replace(W_hh=W), activation="tanh"), np.zeros(5), xs,
                                               num=num))
        g = np.asarray(jax.grad(f)(p.W_hh))
        assert np.all(np.isfinite(g))
        eps, W = 1e-6 * rho, np.asarray(p.W_hh)
        for i, j in [(0, 0), (1, 3), (4, 2)]:
            e = np.zeros((5, 5))
            e[i, j] = eps
            fd = (float(f(W + e)) - float(f(W - e))) / (2 * eps)  # float64 arithmetic in NumPy/Python
            assert g[i, j] == pytest.approx(fd, rel=1e-6, abs=1e-6 / rho)
