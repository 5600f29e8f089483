"""End-to-end: ``python -m experiments.flossing --quick`` writes consistent numbers, figures and its page section."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import experiments.flossing as exp
from experiments import _cli
from experiments.check_report import check
from experiments.report import write_report
from rnnjax.plots import flossing as plots


@pytest.fixture(scope="module")
def quick_run(quick_runs):
    out, metrics = quick_runs("flossing")  # --quick, as the main job runs it (shared with the page tests)
    return out.parent, metrics


def test_quick_run_writes_everything(quick_run):
    root, m = quick_run
    out = root / "flossing"
    for name in m["figures"] + m["files"] + ["metrics.json"]:
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "metrics.json").read_text())["verdict"] == m["verdict"]
    assert set(m["conditions"]) == set(exp.CONDITIONS)


def test_summary_agrees_with_the_per_run_table(quick_run):
    root, m = quick_run
    runs = pd.read_csv(root / "flossing" / "runs.csv")
    cfg = m["config"]
    assert len(runs) == len(exp.CONDITIONS) * len(cfg["delays"]) * cfg["seeds"] * (1 + len(cfg["arm_rhos"]))
    runs = runs[runs["rho"] == cfg["rho"]]
    for name, c in m["conditions"].items():
        for p in c["per_delay"]:
            sub = runs[(runs["condition"] == name) & (runs["delay"] == p["delay"])]
            solved = (sub["test_acc"] >= cfg["threshold"]) & sub["finite"]
            assert p["solved_seeds"] == int(solved.sum()) and p["success_rate"] == pytest.approx(solved.mean())
            assert p["test_mse_mean"] == pytest.approx(sub.loc[sub["finite"], "test_mse"].mean(), rel=1e-6)
        from rnnjax import stats
        lo, _ = stats.clopper_pearson([p["solved_seeds"] for p in c["per_delay"]], cfg["seeds"])
        ok = [p["delay"] for p, low in zip(c["per_delay"], lo, strict=True) if low > 0.5]
        assert c["bridgeable_delay"] == (max(ok) if ok else None)
    spectra = pd.read_csv(root / "flossing" / "spectra.csv")
    init = spectra[spectra["stage"] == "init"]
    assert len(init) == cfg["seeds"] * cfg["hidden"]
    lam1 = init[init["index"] == 1]["lambda"].mean()
    assert m["spectra"]["init"]["lambda1_mean"] == pytest.approx(lam1, rel=1e-6)
    for stage in ("init", "flossed", "trained"):  # every spectrum sorted, largest first
        for _, g in spectra[spectra["stage"] == stage].groupby(["condition", "delay", "seed"]):
            assert np.all(np.diff(g.sort_values("index")["lambda"].to_numpy()) <= 1e-6)
    monitor = pd.read_csv(root / "flossing" / "monitor.csv")
    assert sorted(monitor["step"].unique()) == list(range(0, cfg["steps"], cfg["monitor_every"]))


def test_flossing_before_training_lowered_its_loss(quick_run):
    root, m = quick_run
    curves = pd.read_csv(root / "flossing" / "floss_curves.csv")
    first = curves[curves["step"] == 0]["loss"].mean()
    last = curves[curves["step"] == curves["step"].max()]["loss"].mean()
    assert m["spectra"]["flossed"]["floss_loss_first_mean"] == pytest.approx(first, rel=1e-6)
    assert last < first  # even 10 quick steps move the exponents towards zero
    g = m["gradient_choice"]
    assert set(g["gradients"]) == {"exact", "frozen_states", "local"} and g["floss_default"] == "local"


def test_page_section_is_true_to_the_json(quick_run, tmp_path):
    root, _ = quick_run
    shutil.copytree(root / "flossing", tmp_path / "flossing")  # a page of this experiment alone
    page = write_report(tmp_path, quick=True).read_text()
    assert "## Gradient flossing" in page and "**Verdict:" in page
    assert "fig10_flossing_delay.png" in page and "*Not run: `flossing/metrics.json`" not in page
    assert check(tmp_path) == []


def test_figures_redraw_from_saved_files(quick_run, tmp_path):
    root, m = quick_run
    out = root / "flossing"
    saved = json.loads((out / "metrics.json").read_text())
    plots.plot_delay(pd.read_csv(out / "runs.csv"), saved, saved["config"]["threshold"], path=tmp_path / "a.png")
    plots.plot_spectra(pd.read_csv(out / "spectra.csv"), saved, path=tmp_path / "b.png")
    plots.plot_monitor(pd.read_csv(out / "monitor.csv"), saved, path=tmp_path / "c.png")
    plots.plot_gradient_choice(pd.read_csv(out / "gradient_choice.csv"), saved["gradient_choice"],
                               path=tmp_path / "d.png")
    assert all((tmp_path / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in ("a.png", "b.png", "c.png", "d.png"))


@pytest.mark.parametrize("argv,message", [
    (["--delays", "5", "90"], "--delays must lie in 1..length-2"),
    (["--num", "40"], "--num (40) must be at most --hidden (32)"),
    (["--seeds", "0"], "--seeds: must be an integer >= 1"),
    (["--noise", "nan"], "--noise: must be a finite number"),
])
def test_bad_arguments_are_one_line_and_exit_2(capsys, tmp_path, argv, message):
    assert _cli.entry(exp.main, "flossing", [*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "o").exists()  # nothing written


def test_bridgeable_delay_is_the_largest_with_a_clopper_pearson_lower_bound_above_half():
    import scipy.stats

    # 13/16: lower bound beta.ppf(0.025, 13, 4) > 0.5; 12/16: below (Clopper & Pearson 1934)
    assert scipy.stats.beta.ppf(0.025, 13, 4) > 0.5 > scipy.stats.beta.ppf(0.025, 12, 5)
    b = exp.bridgeable([16, 13, 12, 0], 16, [5, 10, 20, 40])
    assert b["delay"] == 10 and b["next_delay"] == 20 and b["next_solved"] == 12
    assert b["ci"][0] == pytest.approx(scipy.stats.beta.ppf(0.025, 13, 4))
    assert exp.bridgeable([12, 0], 16, [5, 10])["delay"] is None


def test_time_to_solve_is_the_first_check_or_censored_at_the_budget():
    checks = np.array([[0.5, 0.95, 0.8], [0.5, 0.6, 0.7]])
    t, e = exp.time_to_solve(checks, np.array([20, 40, 60]), 0.9, 60)
    assert t.tolist() == [40.0, 60.0] and e.tolist() == [True, False]


def test_verdicts_have_ids_stable_across_seed_bases(quick_run):
    _, m = quick_run
    ids = [v["id"] for v in m["verdicts"]]
    assert len(ids) == len(set(ids)) and "choice:local_vs_exact" in ids
    d = m["delays"][-1]
    assert f"d={d}:c_vs_a" in ids and f"rho=1.5:d={d}:c_vs_a" in ids
    for v in m["verdicts"]:  # a verdict word only where the test rejected at 5%
        if v["p"] is not None and v["p"] >= 0.05:
            assert v["verdict"].startswith("not distinguishable")
