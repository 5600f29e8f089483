"""The gradient analysis' verdicts (issue 19): the seeds' W_hh radii against the population's."""

import numpy as np
import pytest

from experiments.gradient_spectra import _verdicts, radius_draws


def test_seeds_0_to_3_drew_large_radii_not_finite_size():
    r = radius_draws(range(4), 50, "gaussian", draws=1000)
    np.testing.assert_allclose(r["per_seed"], [1.2525, 1.1709, 1.0956, 1.0408], atol=2e-3)  # the numbers
    assert 1.03 < r["population_median"] < 1.08 and r["median"] == pytest.approx(np.median(r["per_seed"]))
    assert r["p_reach"] < 0.025 and r["p"] < 0.05
    v = _verdicts(r, [], 4)[0]
    assert v["id"] == "radius_draw_vs_population" and v["verdict"] == "above the population"


def test_no_verdict_word_when_the_test_does_not_reject():
    r = radius_draws(range(2), 16, "gaussian", draws=200, resamples=2000)
    rows = [{"rho": 0.9, "lyapunov_top_median": -0.1, "lyapunov_top_per_seed": [-0.3, 0.1]}]
    out = _verdicts(r | {"p": 0.5}, rows, 2)
    assert out[0]["verdict"] == "not distinguishable with 2 seeds"
    assert out[1]["id"] == "lyapunov_sign:0.9" and out[1]["verdict"] == "not distinguishable with 2 seeds"
    assert _verdicts(r, [{"rho": 0.9, "lyapunov_top_median": -0.5,
                          "lyapunov_top_per_seed": [-0.5, -0.51, -0.49, -0.5]}], 4)[1]["verdict"] == "vanishing"
