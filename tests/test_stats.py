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


# ---------------------------------------------------------------------------------------------------------
# fixed-b Diebold-Mariano, its critical values and its size; counts, exact tests, survival, verdicts
# ---------------------------------------------------------------------------------------------------------


def test_fft_autocovariances_match_the_definition():
    d = np.random.default_rng(3).standard_normal((3, 37))
    e = d - d.mean(-1, keepdims=True)
    want = np.stack([[np.dot(e[i, k:], e[i, : 37 - k]) / 37 for k in range(37)] for i in range(3)])
    np.testing.assert_allclose(F.autocovariances(d, 36), want, rtol=1e-10, atol=1e-14)
    assert not F.autocovariances(np.full((2, 9), 3.0), 8).any()  # a constant series: exactly 0


def test_fixed_b_hand_case():
    # d = [-3, 1, -3, 1]: deviations e = [-2, 2, -2, 2]; gamma_0..3 = 4, -3, 2, -1
    d = np.array([-3.0, 1.0, -3.0, 1.0])
    # b = 1 (M = 4): LRV = 4 + 2 ((3/4)(-3) + (1/2) 2 + (1/4)(-1)) = 1 = 2 sum S_t^2 / n^2, S = [-2, 0, -2, 0]
    assert F.fixed_b_long_run_variance(d, 1.0) == pytest.approx(1.0, rel=1e-12)
    r = F.dm_fixed_b(d)
    assert r.statistic == pytest.approx(-2.0, rel=1e-12)  # t = -1 / sqrt(1/4)
    assert r.n == 4 and r.b == 1.0 and r.critical_value == pytest.approx(4.8130) and not r.reject_5pct
    # b = 0.75 (M = 3): LRV = 4 + 2 ((2/3)(-3) + (1/3) 2) = 4/3, t = -1 / sqrt(1/3)
    assert F.dm_fixed_b(d, 0.75).statistic == pytest.approx(-np.sqrt(3.0), rel=1e-12)
    # through forecasts, and a forecast against itself (d = 0): NaN, no rejection
    y = np.zeros(4)
    two = F.diebold_mariano_fixed_b(np.stack([np.ones(4), [2.0, 0, 2, 0]]), np.array([2.0, 0, 2, 0]), y)
    assert two.statistic[0] == pytest.approx(-2.0) and np.isnan(two.statistic[1]) and np.isnan(two.p_value[1])
    assert not two.reject_5pct.any()


def test_fixed_b_long_run_variance_general_b_and_b1_partial_sums():
    d = np.random.default_rng(5).standard_normal((4, 60)).cumsum(-1)
    e = d - d.mean(-1, keepdims=True)
    lag = np.abs(np.subtract.outer(np.arange(60), np.arange(60)))
    for b in (0.1, 0.37, 1.0):
        K = np.clip(1 - lag / (b * 60), 0, None)  # Bartlett k(|i - j| / (b n)) as a Toeplitz matrix
        want = np.einsum("ri,ij,rj->r", e, K, e) / 60
        np.testing.assert_allclose(F.fixed_b_long_run_variance(d, b), want, rtol=1e-10)
    S = e.cumsum(-1)
    np.testing.assert_allclose(F.fixed_b_long_run_variance(d, 1.0), 2 * (S**2).sum(-1) / 60**2, rtol=1e-10)


def test_fixed_b_critical_values_against_the_published_and_the_table():
    # the KV (2005) polynomial at b = 1 against Kiefer, Vogelsang & Bunzel (2000)'s 2.740 / 3.764 / 4.771 / 6.090
    for level, cv in F.KVB_B1_CV.items():
        assert float(F.fixed_b_critical_value(1.0, level)) == pytest.approx(cv, rel=0.011)
    assert float(F.fixed_b_critical_value(0.0)) == pytest.approx(1.96)  # b -> 0: the normal
    z = F._fixed_b_table()
    bs, p, q = z
    # the simulated table (100,000 draws) at b = 1 against KVB's quantiles: within Monte Carlo error
    for level, cv in F.KVB_B1_CV.items():
        got = np.exp(np.interp(np.log(2 * (1 - level)), np.log(p), np.log(q[-1])))
        assert got == pytest.approx(cv, rel=0.008)
    # the polynomial against the table for every tabulated b: two-sided 5% p-value at cv(b) is 5% (+-0.6 pt)
    p_at_cv = np.array([F.fixed_b_p_value(F.fixed_b_critical_value(b), b) for b in bs])
    assert np.all(np.abs(p_at_cv - 0.05) < 0.006), p_at_cv
    # p-values: monotone, 1 at t = 0, symmetric, floored at 1e-4, NaN kept; between table rows, in between
    ts = np.linspace(0, 30, 61)
    pv = F.fixed_b_p_value(ts, 0.5)
    assert pv[0] == pytest.approx(1.0) and np.all(np.diff(pv) <= 0) and pv[-1] == pytest.approx(1e-4)
    assert F.fixed_b_p_value(-3.0, 0.5) == F.fixed_b_p_value(3.0, 0.5) and np.isnan(F.fixed_b_p_value(np.nan))
    assert F.fixed_b_p_value(3.0, 0.5) < F.fixed_b_p_value(3.0, 0.51) < F.fixed_b_p_value(3.0, 0.52)


def test_the_stored_table_is_what_the_simulator_writes():
    q = F.simulate_fixed_b_quantiles([0.5, 1.0], [0.1, 0.05, 0.01], draws=20_000, grid=200, seed=1)
    bs, p, table = F._fixed_b_table()
    for row, b in zip(q, (0.5, 1.0), strict=True):
        want = np.exp(np.interp(np.log([0.1, 0.05, 0.01]), np.log(p), np.log(table[np.argmin(np.abs(bs - b))])))
        np.testing.assert_allclose(row, want, rtol=0.04)  # 20,000 coarser draws vs 100,000: MC + grid error


def test_fixed_b_bad_input():
    with pytest.raises(ValueError, match="b must be in"):
        F.dm_fixed_b(np.ones(10), b=0.0)
    with pytest.raises(ValueError, match="non-finite"):
        F.dm_fixed_b(np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="level"):
        F.fixed_b_critical_value(1.0, 0.8)


def test_size_table_small():
    """Fixed-b keeps its size where Newey-West does not (issue 19: NW 49% at phi = 0.99, fixed-b 11%)."""
    rows = F.dm_size_table((0.5, 0.99), n=400, reps=300, seed=2)
    mid, persistent = rows
    assert mid.reps == 300 and mid.fixed_b_ci[0] <= 0.05 <= mid.fixed_b_ci[1]
    assert persistent.nw_ci[0] > 0.15 and persistent.fixed_b_rate < persistent.nw_rate / 2
    lo, hi = F.clopper_pearson(persistent.nw_rejections, 300)
    assert persistent.nw_ci == pytest.approx((float(lo), float(hi)))
    assert persistent.nw_rate == persistent.nw_rejections / 300
    d = F.ar1_paths(0.9, 4000, 3, np.random.default_rng(0))  # stationary from the start: var 1 / (1 - phi^2)
    np.testing.assert_allclose(d.var(0), 1 / (1 - 0.81), rtol=0.1)
    np.testing.assert_allclose(np.corrcoef(d[:, 1], d[:, 2])[0, 1], 0.9, atol=0.02)


def test_clopper_pearson_against_scipy_binomtest():
    import scipy.stats

    for n in (1, 8, 16, 2000):
        for k in sorted({0, 1, n // 3, n - 1, n}):
            ci = scipy.stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
            lo, hi = F.clopper_pearson(k, n)
            assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12)
    # closed forms at the edges: k = 0 -> upper 1 - (a/2)^(1/n); k = n -> lower (a/2)^(1/n)
    assert F.clopper_pearson(0, 8)[1] == pytest.approx(1 - 0.025 ** (1 / 8))
    assert F.clopper_pearson(8, 8)[0] == pytest.approx(0.025 ** (1 / 8))
    with pytest.raises(ValueError):
        F.clopper_pearson(9, 8)


def _hypergeom_p(k1, n1, k2, n2):
    from math import comb

    K, N = k1 + k2, n1 + n2
    pmf = {x: comb(n1, x) * comb(n2, K - x) / comb(N, K) for x in range(max(0, K - n2), min(K, n1) + 1)}
    two = sum(v for v in pmf.values() if v <= pmf[k1] * (1 + 1e-7))
    return two, sum(v for x, v in pmf.items() if x >= k1)


def test_fisher_exact_against_the_hypergeometric():
    # the numbers: 3/8 vs 7/8 -> p = 0.12; 7/8 vs 0/8 -> p = 0.0014
    assert F.fisher_exact(3, 8, 7, 8).p_value == pytest.approx(0.1189, abs=1e-4)
    assert F.fisher_exact(7, 8, 0, 8).p_value == pytest.approx(0.0014, abs=1e-4)
    for k1, n1, k2, n2 in [(3, 8, 7, 8), (7, 8, 0, 8), (5, 16, 12, 16), (8, 16, 0, 16), (2, 5, 4, 12)]:
        two, greater = _hypergeom_p(k1, n1, k2, n2)
        assert F.fisher_exact(k1, n1, k2, n2).p_value == pytest.approx(two, rel=1e-9)
        assert F.fisher_exact(k1, n1, k2, n2, "greater").p_value == pytest.approx(greater, rel=1e-9)


# Freireich et al. (1963) remission times, weeks (Gehan 1965; Kleinbaum & Klein, Survival Analysis, ch. 2):
# 6-MP group with censoring (+), placebo group all relapsed.
MP6 = np.array([6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35.0])
MP6_EVENT = np.array([1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0], bool)
PLACEBO = np.array([1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23.0])


def test_kaplan_meier_textbook_case():
    km = F.kaplan_meier(MP6, MP6_EVENT)
    at = {t: i for i, t in enumerate(km.times)}
    # published KM estimates (Kleinbaum & Klein table 2.x; Cox & Oakes): 0.857 0.807 0.753 0.690 0.627 0.538 0.448
    want = {6: 0.8571, 7: 0.8067, 10: 0.7529, 13: 0.6902, 16: 0.6275, 22: 0.5378, 23: 0.4482}
    for t, s in want.items():
        assert km.survival[at[t]] == pytest.approx(s, abs=1e-4)
    # the same by the product-limit formula, by hand: prod (1 - d_i / n_i)
    s = 1.0
    for t in np.unique(MP6[MP6_EVENT]):
        s *= 1 - np.sum((MP6 == t) & MP6_EVENT) / np.sum(MP6 >= t)
        assert km.survival[at[t]] == pytest.approx(s, rel=1e-12)
    # log-log band as R's survfit(conf.type = "log-log") prints it: 0.620-0.952 at 6, 0.188-0.680 at 23
    assert (km.ci_low[at[6]], km.ci_high[at[6]]) == pytest.approx((0.620, 0.952), abs=6e-4)
    assert (km.ci_low[at[23]], km.ci_high[at[23]]) == pytest.approx((0.188, 0.680), abs=6e-4)
    assert km.median == 23.0 and km.median_ci == (13.0, float("inf"))  # the upper limit is not reached
    never = F.kaplan_meier([100.0, 100.0, 100.0], [False, False, False])  # all censored at the budget
    assert np.all(never.survival == 1.0) and never.median == float("inf")
    with pytest.raises(ValueError, match="equal-length"):
        F.kaplan_meier([1.0, 2.0], [True])


def _logrank_by_hand(t1, e1, t2, e2):
    """sum (O_1 - E_1) / sqrt(sum V) over distinct event times (Mantel 1966; Collett, Modelling Survival Data)."""
    t, e = np.concatenate([t1, t2]), np.concatenate([e1, e2])
    g1 = np.arange(len(t)) < len(t1)
    o_e, v = 0.0, 0.0
    for s in np.unique(t[e]):
        n, n1 = np.sum(t >= s), np.sum((t >= s) & g1)
        d, d1 = np.sum((t == s) & e), np.sum((t == s) & e & g1)
        o_e += d1 - d * n1 / n
        v += d * (n1 / n) * (1 - n1 / n) * (n - d) / max(n - 1, 1)
    return o_e / np.sqrt(v)


def test_logrank_textbook_case_and_by_hand():
    r = F.logrank(MP6, MP6_EVENT, PLACEBO, np.ones(21, bool))
    assert r.statistic**2 == pytest.approx(16.79, abs=0.01)  # Kleinbaum & Klein: log-rank chi^2 = 16.79
    assert r.reject_5pct and r.n == (21, 21)
    z = _logrank_by_hand(MP6, MP6_EVENT, PLACEBO, np.ones(21, bool))
    assert abs(r.statistic) == pytest.approx(abs(z), rel=1e-10)
    t1, e1 = np.array([3.0, 5, 7, 9, 12, 12]), np.array([1, 1, 0, 1, 0, 0], bool)
    t2, e2 = np.array([1.0, 2, 3, 4, 6, 12]), np.array([1, 1, 1, 0, 1, 0], bool)
    r = F.logrank(t1, e1, t2, e2)
    assert abs(r.statistic) == pytest.approx(abs(_logrank_by_hand(t1, e1, t2, e2)), rel=1e-10)
    assert r.p_value == pytest.approx(2 * (1 - __import__("scipy").stats.norm.cdf(abs(r.statistic))), rel=1e-9)


def test_bootstrap_median_ci_against_the_exact_bootstrap_distribution():
    from math import comb

    v = np.array([0.3, 1.1, 1.9, 2.2, 3.0, 4.5, 5.1, 6.0, 7.7, 8.4, 9.9])  # n = 11, distinct, sorted
    n = len(v)
    # median of a resample <= v[k-1] iff >= 6 of its 11 draws are among the k smallest: Bin(11, k/11) >= 6
    cdf = np.array([sum(comb(n, j) * (k / n) ** j * (1 - k / n) ** (n - j) for j in range(6, n + 1))
                    for k in range(1, n + 1)])
    lo, hi = v[np.argmax(cdf >= 0.025)], v[np.argmax(cdf >= 0.975)]
    assert np.min(np.abs(cdf - 0.025)) > 0.006 and np.min(np.abs(cdf - 0.975)) > 0.006  # no jump near a level
    med, a, b = F.bootstrap_median_ci(v, 0.95, seed=0, n_resamples=20_000)
    assert med == 4.5 and (a, b) == (lo, hi)


def test_verdict_never_without_a_rejection():
    for k1 in range(9):
        for k2 in range(9):
            r = F.fisher_exact(k1, 8, k2, 8)
            assert (F.verdict(r, "beats") == "beats") == (r.p_value < 0.05)
            if r.p_value >= 0.05:
                assert F.verdict(r, "beats") == "not distinguishable with 8 seeds"
    assert F.verdict(F.fisher_exact(3, 8, 9, 16), "extends") == "not distinguishable with 8 vs 16 seeds"
    d = np.random.default_rng(0).standard_normal(200)
    r = F.dm_fixed_b(d)
    assert not r.reject_5pct and F.verdict(r, "worse", n=4) == "not distinguishable with 4 seeds"
    assert F.verdict(F.dm_fixed_b(d + 1.0), "worse") == "worse"
    with pytest.raises(ValueError, match="one comparison"):
        F.verdict(F.dm_fixed_b(np.stack([d, d + 1])), "worse")
    # a bare p-value or a computed rejection: the same rule
    assert [F.verdict(p, "beats", n=4) for p in (0.049, 0.05, np.float64(0.01))] == [
        "beats", "not distinguishable with 4 seeds", "beats"]
    assert [F.verdict(x, "worse", n=3) for x in (True, False, np.bool_(True))] == [
        "worse", "not distinguishable with 3 seeds", "worse"]
