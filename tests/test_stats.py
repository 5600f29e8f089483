"""The HAC long-run variance and the Diebold-Mariano test (rnnjax.stats): hand cases, an independent
implementation, the Student t tail against its series, the test's size under the null by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from rnnjax import stats as F


def test_diebold_mariano_hand_case():
    actual = np.zeros(4)
    pred = np.array([1.0, 1.0, 1.0, 1.0])
    base = np.array([2.0, 0.0, 2.0, 0.0])
    # d = pred^2 - base^2 = [-3, 1, -3, 1]: mean -1, deviations [-2, 2, -2, 2], gamma_0 = 4, gamma_1 = -3
    r = F.diebold_mariano(pred, base, actual, lags=0)  # LRV = gamma_0 = 4: DM = -1 / sqrt(4/4) = -1
    assert r.statistic == pytest.approx(-np.sqrt(3.0 / 4.0))  # HLN factor sqrt((M-1)/M)
    # t(3): P(|T| <= t) = (2/pi)(theta + sin theta cos theta), theta = atan(t/sqrt 3) = atan(1/2)
    assert r.p_value == pytest.approx(1 - 2 / np.pi * (np.arctan(0.5) + 0.4), rel=1e-12)
    r = F.diebold_mariano(pred, base, actual, lags=1)  # LRV = 4 + 2 (1/2)(-3) = 1: DM = -1 / sqrt(1/4) = -2
    assert r.statistic == pytest.approx(-np.sqrt(3.0)) and int(r.lags) == 1
    assert r.p_value == pytest.approx(0.5 - 1 / np.pi, rel=1e-12)  # theta = pi/4
    assert float(r.lag1_autocorr) == pytest.approx(-0.75) and bool(r.reliable)
    two = F.diebold_mariano(np.stack([pred, base]), base, actual, lags=1)  # a forecast against itself: d = 0
    assert two.statistic[0] == pytest.approx(r.statistic) and np.isnan(two.statistic[1])
    assert np.isnan(two.p_value[1]) and not two.reliable[1]


def _t_two_sided_p_series(t, nu):
    """P(|T| >= t) for T ~ t(nu), integer nu, by the finite series of Abramowitz & Stegun 26.7.3-26.7.4."""
    theta = np.arctan(abs(t) / np.sqrt(nu))
    c2, s = np.cos(theta) ** 2, np.sin(theta)
    if nu % 2 == 0:  # A = sin(theta) (1 + 1/2 c^2 + (1 3)/(2 4) c^4 + ... up to c^(nu-2))
        term, total = 1.0, 1.0
        for k in range(1, nu // 2):
            term *= (2 * k - 1) / (2 * k) * c2
            total += term
        return 1.0 - s * total
    if nu == 1:
        return 1.0 - 2 * theta / np.pi
    term, total = np.cos(theta), np.cos(theta)  # A = (2/pi)(theta + sin(theta)(c + 2/3 c^3 + ... up to c^(nu-2)))
    for k in range(1, (nu - 1) // 2):
        term *= (2 * k) / (2 * k + 1) * c2
        total += term
    return 1.0 - 2 / np.pi * (theta + s * total)


@pytest.mark.parametrize("nu", [1, 2, 3, 4, 10, 199, 1596])
def test_student_t_p_value_against_the_series(nu):
    ts = np.array([0.0, 0.3, 1.0, 1.96, 2.5, 4.0, 7.0])
    want = np.array([_t_two_sided_p_series(t, nu) for t in ts])
    got = F.student_t_two_sided_p(np.concatenate([ts, -ts]), nu)
    np.testing.assert_allclose(got, np.concatenate([want, want]), rtol=1e-9, atol=1e-15)


def test_student_t_p_value_known_quantiles_and_tails():
    # two-sided 5% and 1% critical values from the t table: t_{0.975}(10), t_{0.995}(30)
    got = F.student_t_two_sided_p([2.228138851986, 2.749995653567], [10, 30])
    np.testing.assert_allclose(got, [0.05, 0.01], rtol=1e-9)
    # far tail: t(1) is Cauchy, p = (2/pi) atan(1/t) exactly; t(2): p = 1 - t / sqrt(2 + t^2)
    np.testing.assert_allclose(F.student_t_two_sided_p(1e12, 1), 2 / np.pi * np.arctan(1e-12), rtol=1e-9)
    t = 1e6
    np.testing.assert_allclose(F.student_t_two_sided_p(t, 2), 2 / (np.sqrt(2 + t * t) * (np.sqrt(2 + t * t) + t)),
                               rtol=1e-8)
    assert np.isnan(F.student_t_two_sided_p(np.nan, 5)) and F.student_t_two_sided_p(np.inf, 5) == 0.0


def _ar1(phi, draws, n, seed):
    """``draws`` AR(1) series d_t = phi d_{t-1} + e_t of length n, e ~ N(0, 1), after a burn-in of 300."""
    e = np.random.default_rng(seed).standard_normal((draws, n + 300))
    d = np.zeros_like(e)
    for t in range(1, e.shape[1]):
        d[:, t] = phi * d[:, t - 1] + e[:, t]
    return d[:, 300:]


def _dm_reference(d):
    """An independent Diebold-Mariano: NW94 lag by loops, the Bartlett LRV as a Toeplitz quadratic form."""
    n = len(d)
    e = d - d.mean()
    gam = lambda j: sum(e[i] * e[i - j] for i in range(j, n)) / n
    m = int(4 * (n / 100) ** (2 / 9))
    s0 = gam(0) + 2 * sum(gam(j) for j in range(1, m + 1))
    s1 = 2 * sum(j * gam(j) for j in range(1, m + 1))
    L = min(int(np.floor(1.1447 * abs(s1 / s0) ** (2 / 3) * n ** (1 / 3))), n - 1)
    lag = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    W = np.where(lag <= L, 1 - lag / (L + 1), 0.0)  # Bartlett weights w(|i - j|)
    lrv = e @ W @ e / n  # = gamma_0 + 2 sum_k w_k gamma_k
    stat = d.mean() / np.sqrt(lrv / n) * np.sqrt((n - 1) / n)  # HLN, h = 1
    return stat, _t_two_sided_p_series(stat, n - 1), L, gam(1) / gam(0)


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.95])
def test_dm_matches_an_independent_implementation(phi):
    d = _ar1(phi, 6, 200, seed=7) + 0.1  # a small true mean, so some statistics are large
    r = F.dm_test(d)
    for i in range(len(d)):
        stat, p, L, r1 = _dm_reference(d[i])
        assert int(r.lags[i]) == L
        assert r.statistic[i] == pytest.approx(stat, rel=1e-10)
        assert r.p_value[i] == pytest.approx(p, rel=1e-8, abs=1e-14)
        assert r.lag1_autocorr[i] == pytest.approx(r1, rel=1e-10)
    # the same through forecasts: (p - y)^2 - (b - y)^2 = d with p - y = (d + 1)/2, b - y = (d - 1)/2
    y = np.linspace(1.0, 2.0, 200)
    via = F.diebold_mariano(y + (d + 1) / 2, y + (d - 1) / 2, y)
    np.testing.assert_allclose(via.statistic, r.statistic, rtol=1e-9)


@pytest.fixture(scope="module")
def null_draws():
    """500 draws of n = 200 AR(1) loss differentials with mean 0, for phi = 0, 0.5, 0.95."""
    return {phi: _ar1(phi, 500, 200, seed=11) for phi in (0.0, 0.5, 0.95)}


def test_dm_size_under_the_null(null_draws):
    size = {phi: float(np.mean(F.dm_test(d).p_value < 0.05)) for phi, d in null_draws.items()}
    iid = {phi: float(np.mean(F.dm_test(d, lags=0).p_value < 0.05)) for phi, d in null_draws.items()}
    assert abs(size[0.0] - 0.05) <= 0.025  # white noise: the nominal 5% (about 6% measured)
    assert 0.03 <= size[0.5] <= 0.12  # HAC: about 9%, against 25% for the i.i.d. variance
    assert iid[0.5] > 0.2 and iid[0.0] == pytest.approx(size[0.0], abs=0.03)
    assert size[0.95] > 0.2  # no HAC variance from 200 points of a persistent series holds its size ...
    flagged = float(np.mean(~F.dm_test(null_draws[0.95]).reliable))
    assert flagged > 0.6  # ... which is why such differentials are flagged (r_1 >= 0.9)
    assert not (~F.dm_test(null_draws[0.0]).reliable).any() and not (~F.dm_test(null_draws[0.5]).reliable).any()
