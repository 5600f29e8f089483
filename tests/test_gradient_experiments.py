"""End-to-end: Experiment 2 and the gradient-spectra experiment in --quick mode, and their bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from experiments import _cli, gradient_spectra, gradient_stability


def test_gradient_stability_quick_writes_history_claims_and_figure(quick_runs):
    out, m = quick_runs("gradient_stability")  # --quick --rhos 0.9 0.99 1.2 60
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(m))
    assert m["figures"] == ["fig3_grad_norm.png"] and (out / "fig3_grad_norm.png").stat().st_size > 10_000
    hist = pd.read_csv(out / "history.csv")
    assert list(hist.columns) == ["rho", "seed", "step", "loss", "grad_whh_fro", "grad_whh_spec"]
    assert np.isfinite(hist[["loss", "grad_whh_fro", "grad_whh_spec"]].to_numpy()).all()
    steps, seeds = m["config"]["num_steps"], m["config"]["seeds"]
    for rho in (0.9, 0.99, 1.2):  # the finite runs come out whole ...
        assert len(hist[np.isclose(hist.rho, rho)]) == steps * len(seeds)
    assert (hist.grad_whh_spec <= hist.grad_whh_fro * (1 + 1e-5)).all()  # ||A||_2 <= ||A||_F
    # ... and rho = 60 is reported per seed with the step where it went non-finite
    bad = next(e for e in m["per_rho"] if e["rho"] == 60.0)
    assert bad["status"] == "non-finite runs" and len(bad["diverged"]) == len(seeds)
    for d in bad["diverged"]:
        assert len(hist[(hist.rho == 60.0) & (hist.seed == d["seed"])]) == d["first_nonfinite_step"]
    assert all(e["status"] == "finite" for e in m["per_rho"] if e["rho"] != 60.0)
    # one claim per report rho, each with a plain verdict, saved beside the measurement
    assert [c["rho"] for c in m["claims"]] == [0.9, 0.99, 1.2]
    assert {c["verdict"] for c in m["claims"]} <= {"agrees", "disagrees"}
    claims = pd.read_csv(out / "claims.csv")
    assert list(claims.verdict) == [c["verdict"] for c in m["claims"]]
    e09 = m["per_rho"][0]
    assert e09["init_gamma_norm2_median"] > 1 > np.exp(e09["init_top_lyapunov_median"])  # bound loose, yet vanishing


def test_gradient_spectra_quick_writes_every_table_and_figure(quick_runs):
    out, m = quick_runs("gradient_spectra")  # --quick
    assert m["figures"] == ["fig4_lag_profile.png", "fig5_jacobian_spectra.png", "fig6_phase_diagram.png"]
    for name in m["figures"] + ["lag_profile.csv", "spectra.csv", "lyapunov.csv", "phase.csv", "metrics.json"]:
        assert (out / name).stat().st_size > 0, name
    lag = pd.read_csv(out / "lag_profile.csv")
    assert np.all(lag.log10_profile <= lag.log10_bound + 1e-4)  # the report's bound holds at every lag
    assert all(e["bound_holds"] for e in m["per_rho"])
    phase = pd.read_csv(out / "phase.csv")
    assert set(phase.activation) == {"tanh", "relu"} and set(phase.length) == set(m["config"]["lengths"])
    # the lag-profile slope and the top Lyapunov exponent measure the same rate
    assert np.corrcoef(phase.lyap_top, phase.lag_slope)[0, 1] > 0.9
    assert set(m["phase_crossings"]) == {"tanh", "relu"}


@pytest.mark.parametrize("module,argv,match", [
    (gradient_stability, ["--norm", "nuclear"], "argument --norm: invalid choice: 'nuclear'"),
    (gradient_stability, ["--rhos", "0.9", "0"], "argument --rhos: must be a number > 0"),
    (gradient_stability, ["--segment-length", "1"], "argument --segment-length: must be an integer >= 2"),
    (gradient_spectra, ["--rhos", "-1"], "argument --rhos: must be a number > 0"),
    (gradient_spectra, ["--rho-min", "2", "--rho-max", "1"], "--rho-min 2 must be below --rho-max 1"),
])
def test_bad_arguments_exit_2_with_one_clear_line(tmp_path, capsys, module, argv, match):
    assert _cli.entry(module.main, "x", argv + ["--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()
