"""Experiment 1's verdicts (issue 19): the fixed-b test decides, the Newey-West test carries its simulated size."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from experiments import stock_forecast as exp
from rnnjax import stats


def test_size_simulation_fixed_b_keeps_size_newey_west_does_not():
    rows = stats.dm_size_table((0.0, 0.99), n=1597, reps=300, seed=3)
    white, persistent = rows
    for r in rows:  # fixed-b: 5% inside its Clopper-Pearson interval
        assert r.fixed_b_ci[0] <= 0.05 <= r.fixed_b_ci[1] or r.phi == 0.99
        ci = scipy.stats.binomtest(int(r.nw_rejections), int(r.reps)).proportion_ci(method="exact")
        lo, hi = ci.low, ci.high
        assert r.nw_ci == pytest.approx((lo, hi))  # Clopper-Pearson against scipy
    assert white.fixed_b_ci[0] <= 0.05 <= white.fixed_b_ci[1]
    assert persistent.nw_ci[0] > 0.3  # Newey-West over-rejects at phi = 0.99


def test_package_size_table():
    t = exp.size_table()
    assert t["n"] == 1597 and t["reps"] >= 10_000 and [r["phi"] for r in t["rows"]] == [0.0, 0.5, 0.9, 0.95, 0.99]
    for r in t["rows"]:
        lo, hi = stats.clopper_pearson(r["nw_rejections"], r["reps"])
        assert r["nw_ci"] == pytest.approx([float(lo), float(hi)])
        assert r["nw_rate"] == r["nw_rejections"] / r["reps"]
    nw = [r["nw_rate"] for r in t["rows"]]
    assert nw == sorted(nw) and nw[-1] > 0.4 and t["rows"][2]["fixed_b_ci"][0] <= 0.05 <= t["rows"][2]["fixed_b_ci"][1]
    assert exp.nw_size_at(t, 0.993)["phi"] == 0.99 and exp.nw_size_at(t, 0.94)["phi"] == 0.95


def test_no_verdict_word_without_rejection():
    rng = np.random.default_rng(0)
    for _ in range(40):
        d = np.cumsum(rng.standard_normal((3, 400)), -1) * 0.05 + rng.normal(0, 1, (3, 1)) * 0.3  # persistent
        fb = stats.dm_fixed_b(d)
        seeds = [exp._seed_verdict(float(t), bool(r)) for t, r in zip(fb.statistic, fb.reject_5pct, strict=True)]
        word = exp._verdict(seeds)
        if word in ("beats", "worse"):
            assert fb.reject_5pct.all() and len(set(np.sign(fb.statistic))) == 1
            assert (word == "worse") == (fb.statistic[0] > 0)
        else:
            assert word == "not distinguishable with 3 seeds"
            assert not (fb.reject_5pct.all() and len(set(np.sign(fb.statistic))) == 1)


def test_verdict_record_evidence():
    m = {"verdict_vs_persistence": "not distinguishable with 4 seeds", "dm_vs_persistence": {
        "seeds_tested": 4, "nw_size": {"phi": 0.99, "rate": 0.482, "ci": [0.47, 0.49]}, "p_value_min": 2.3e-7,
        "p_value_max": 9.5e-5, "rmse_ratio_min": 19.5, "rmse_ratio_max": 34.7, "fixed_b_statistic_min": 1.64,
        "fixed_b_statistic_max": 1.92, "critical_value": 4.81, "fixed_b_p_value_min": 0.3, "fixed_b_p_value_max": 0.4,
        "seeds_significantly_worse": 0, "seeds_significantly_better": 0}}
    v = exp.verdict_record(m, "next_price_vs_persistence", "claim")
    assert v["p"] == 0.4 and v["verdict"] == "not distinguishable with 4 seeds"
    assert "19.5-34.7x persistence's RMSE; fixed-b t = 1.64-1.92" in v["evidence"]
    assert "rejects a true null 48% of the time at r1 = 0.99" in v["evidence"]
