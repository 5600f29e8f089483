"""End to end: experiments.stock_forecast on the embedded data (few epochs), and on small CSVs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from test_stooq import KEY, Reply
from test_stooq import server as stooq_server  # noqa: F401  (the local Stooq server fixture)

from experiments import stock_forecast as exp
from rnnjax.data.prices import load_prices

KEYS = {"rmse", "mae", "rmse_min", "rmse_max", "rmse_std", "rmse_per_seed", "mae_min", "mae_max", "mae_per_seed",
        "persistence_rmse", "persistence_mae", "beats_persistence", "seeds_beating_persistence", "dm_vs_persistence",
        "verdict_vs_persistence",
        "train_rmse", "train_mae", "train_persistence_rmse", "train_persistence_mae", "final_loss_per_seed", "seeds",
        "config", "data", "timings_s", "files", "figures"}


@pytest.fixture(scope="module")
def quick_run(quick_runs):
    return quick_runs("stock_forecast")  # --quick (4 seeds): the report tier's run, shared with the page tests


def test_quick_run_writes_everything(quick_run):
    out, m = quick_run
    assert KEYS <= set(m)
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(m))
    files = ["history.csv", "predictions.csv", "train_tail.csv", "fig1_training.png", "fig2_forecast.png"]
    for name in files:
        assert (out / name).stat().st_size > 0
    assert m["figures"] == ["fig1_training.png", "fig2_forecast.png"]
    last = max((out / n).stat().st_mtime_ns for n in files)
    assert (out / "metrics.json").stat().st_mtime_ns >= last  # metrics.json is written last
    d = m["data"]
    assert (d["source"], d["n_rows"], d["n_train_rows"], d["n_test_rows"]) == ("embedded:msft.us", 7983, 6386, 1597)
    assert (d["n_train_windows"], d["n_test_windows"]) == (6366, 1597)
    assert d["test_range"] == ["2011-07-12", "2017-11-10"] and d["train_close_max"] == pytest.approx(44.814)
    cfg = m["config"]
    assert (cfg["epochs"], cfg["hidden"], cfg["lookback"], cfg["lr"], cfg["clip"], cfg["loss_fn"]) == (
        20, 16, 20, 0.01, 5.0, "mse_last")
    assert "apikey" not in cfg and cfg["apikey_given"] is False
    assert m["seeds"]["count"] == 4 and m["seeds"]["ok"] == 4
    assert m["verdict_vs_persistence"] in ("beats", "worse", "not distinguishable with 4 seeds")
    for key in ("rmse", "mae", "persistence_rmse", "persistence_mae", "train_rmse"):
        assert np.isfinite(m[key]) and m[key] > 0


def test_quick_run_numbers_agree_with_its_tables(quick_run):
    out, m = quick_run
    pred = pd.read_csv(out / "predictions.csv")
    assert len(pred) == 1597 and list(pred.columns) == ["date", "actual", "persistence", "rnn_mean", "rnn_seed0",
                                                        "rnn_seed1", "rnn_seed2", "rnn_seed3"]
    closes = load_prices()
    test = closes.iloc[6386:]
    np.testing.assert_allclose(pred["actual"], test.to_numpy())
    np.testing.assert_allclose(pred["persistence"], closes.iloc[6385:-1].to_numpy())  # yesterday's close
    assert pred["date"].iloc[0] == "2011-07-12"
    err = pred[[f"rnn_seed{s}" for s in range(4)]].to_numpy() - pred[["actual"]].to_numpy()
    per_seed = np.sqrt((err**2).mean(0))
    np.testing.assert_allclose(m["rmse_per_seed"], per_seed, rtol=1e-6)
    assert m["rmse"] == pytest.approx(per_seed.mean()) and m["rmse_max"] == pytest.approx(per_seed.max())
    np.testing.assert_allclose(m["mae_per_seed"], np.abs(err).mean(0), rtol=1e-6)
    naive = pred["persistence"] - pred["actual"]
    assert m["persistence_rmse"] == pytest.approx(np.sqrt((naive**2).mean()))
    assert m["persistence_mae"] == pytest.approx(naive.abs().mean())
    hist = pd.read_csv(out / "history.csv")
    assert len(hist) == 80 and hist.groupby("seed").epoch.max().tolist() == [20] * 4
    assert (hist.grad_norm_clipped <= 5.0 + 1e-5).all()
    np.testing.assert_allclose(hist.grad_norm_clipped, np.minimum(hist.grad_norm, 5.0), rtol=1e-6)


def test_autograd_gives_the_same_numbers(quick_run, tmp_path):
    _, m = quick_run
    # seeds 0 and 1 of the shared 4-seed run (seed s is fold_in(PRNGKey(0), s) whatever the count)
    auto = exp.main(["--quick", "--seeds", "2", "--method", "autograd", "--out", str(tmp_path)])
    np.testing.assert_allclose(auto["rmse_per_seed"], m["rmse_per_seed"][:2], rtol=1e-4)
    np.testing.assert_allclose(auto["final_loss_per_seed"], m["final_loss_per_seed"][:2], rtol=1e-4)
    h_auto, h_bptt = pd.read_csv(tmp_path / "history.csv"), pd.read_csv(quick_run[0] / "history.csv")
    h_bptt = h_bptt[h_bptt.seed < 2].reset_index(drop=True)
    assert len(h_auto) == len(h_bptt) == 40 and (h_auto.seed == h_bptt.seed).all()
    np.testing.assert_allclose(h_auto[["loss", "grad_norm"]], h_bptt[["loss", "grad_norm"]], rtol=1e-4)


def test_redraw_from_saved_files(quick_run, tmp_path):
    run, _ = quick_run
    out = tmp_path / "run"  # a copy: the shared run is read by other pytest-xdist workers meanwhile
    shutil.copytree(run, out)
    for name in ("fig1_training.png", "fig2_forecast.png"):
        (out / name).unlink()
    assert exp.redraw(out) == ["fig1_training.png", "fig2_forecast.png"]
    for name in ("fig1_training.png", "fig2_forecast.png"):  # the same pictures as the run drew
        assert (out / name).read_bytes() == (run / name).read_bytes()


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as stop:
        exp.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--ticker", "--csv", "--apikey", "--seeds", "--target", "--loss", "--optimizer", "--cell", "--quick"):
        assert opt in text


def _small_csv(tmp_path, n=60):
    dates = pd.bdate_range("2020-01-01", periods=n)
    close = 20.0 + np.cumsum(np.sin(np.arange(n) / 3.0))
    path = tmp_path / "tiny.csv"
    pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Close": close}).to_csv(path, index=False)
    return path


SMALL = ["--lookback", "5", "--epochs", "6", "--seeds", "2", "--clip", "0", "--target", "returns", "--loss",
         "many-to-many"]  # the next two tests share one compiled program (the learning rate is traced)


def test_ticker_source_through_a_local_stooq(stooq_server, tmp_path, capsys):  # noqa: F811
    server = stooq_server
    server.script(Reply(200, _small_csv(tmp_path).read_text(), "text/csv"))
    out = tmp_path / "out"
    m = exp.main(["--ticker", "TINY.US", "--apikey", KEY, "--cache-dir", str(tmp_path / "cache"),
                  "--stooq-url", server.url, *SMALL, "--out", str(out)])
    assert len(server.seen) == 1 and f"apikey={KEY}" in server.seen[0]
    assert m["data"]["source"] == "stooq:tiny.us" and m["data"]["n_rows"] == 60
    assert m["seeds"]["ok"] == 2 and np.isfinite(m["rmse"])
    assert m["config"]["apikey_given"] is True
    assert (tmp_path / "cache" / "stooq" / "tiny.us.csv").is_file()
    for f in out.iterdir():  # the key is in no output file and not on the console
        assert KEY not in f.read_bytes().decode("latin-1")
    assert KEY not in capsys.readouterr().out


def test_diverged_seeds_are_reported_not_saved_as_nan(tmp_path):
    m = exp.main(["--csv", str(_small_csv(tmp_path)), *SMALL, "--lr", "1e30", "--out", str(tmp_path / "out")])
    status = m["seeds"]["status"]
    assert [s["status"] for s in status] == ["nonfinite", "nonfinite"]
    assert all(s["first_nonfinite_step"] >= 1 and "non-finite at step" in s["message"] for s in status)
    assert m["seeds"]["ok"] == 0 and m["rmse"] is None and m["beats_persistence"] is None
    assert m["verdict_vs_persistence"] == "no finite seed"
    assert np.isfinite(m["persistence_rmse"]) and m["data"]["source"].startswith("csv:")
    hist = pd.read_csv(tmp_path / "out" / "history.csv")
    assert np.isfinite(hist[["loss", "grad_norm"]].to_numpy()).all()
    assert hist.groupby("seed").size().tolist() == [s["first_nonfinite_step"] for s in status]  # cut there
    assert list(pd.read_csv(tmp_path / "out" / "predictions.csv").columns) == ["date", "actual", "persistence"]
    assert m["figures"] == ["fig1_training.png", "fig2_forecast.png"] and (tmp_path / "out" / "metrics.json").exists()


def test_too_few_rows_stops_before_training(tmp_path):
    with pytest.raises(ValueError, match="too few rows: 20 rows"):
        exp.main(["--csv", str(_small_csv(tmp_path, 20)), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_unknown_cell_refused(capsys):
    with pytest.raises(ValueError, match="unknown cell 'transformer'"):
        namespace = exp.build_parser().parse_args(["--seeds", "1"]).__class__
        exp.fit_model(namespace(cell="transformer", activation=None), None)
    with pytest.raises(SystemExit):  # and argparse lists the cells there are
        exp.main(["--cell", "transformer"])
    assert "choose from 'rnn', 'lstm', 'gru'" in capsys.readouterr().err


def test_verdict_needs_every_seed_significant():
    assert exp._seed_verdict(-5.0, True) == "better" and exp._seed_verdict(5.0, True) == "worse"
    assert exp._seed_verdict(30.0, False) == "not significant"  # no rejection: no word, whatever the size
    assert exp._seed_verdict(None, False) == "not significant"
    assert exp._verdict(["better", "better"]) == "beats" and exp._verdict(["worse", None]) == "worse"
    assert exp._verdict(["worse", "not significant"]) == "not distinguishable with 2 seeds"
    assert exp._verdict(["better", "worse"]) == "not distinguishable with 2 seeds"
    assert exp._verdict(["not significant"]) == "not distinguishable with 1 seed"
    assert exp._verdict([None, None]) == "no finite seed"


def test_dm_records_per_seed_and_summary(quick_run):
    from rnnjax import stats

    out, m = quick_run
    dm = m["dm_vs_persistence"]
    pred = pd.read_csv(out / "predictions.csv")
    for st in m["seeds"]["status"]:  # both tests re-derived from the saved forecasts
        s = st["seed"]
        args = (pred[f"rnn_seed{s}"].to_numpy(), pred["persistence"].to_numpy(), pred["actual"].to_numpy())
        fb, nw = stats.diebold_mariano_fixed_b(*args), stats.diebold_mariano(*args)
        assert st["dm_fixed_b"]["statistic"] == pytest.approx(float(fb.statistic), rel=1e-5)
        assert st["dm_fixed_b"]["reject_5pct"] == bool(fb.reject_5pct)
        assert st["dm"]["p_value"] == pytest.approx(float(nw.p_value), rel=1e-3, abs=1e-300)
        assert st["rmse_ratio"] == pytest.approx(m["rmse_per_seed"][s] / m["persistence_rmse"])
        assert st["verdict"] == exp._seed_verdict(st["dm_fixed_b"]["statistic"], st["dm_fixed_b"]["reject_5pct"])
        size = st["dm"]["size_at_r1"]  # the tabulated phi nearest r1, and that row's simulated NW size
        row = min(m["nw_size_table"]["rows"], key=lambda r: abs(r["phi"] - st["dm"]["lag1_autocorr"]))
        assert (size["phi"], size["rate"]) == (row["phi"], row["nw_rate"])
    assert dm["critical_value"] == pytest.approx(4.813, abs=1e-3)  # KV 2005 polynomial at b = 1
    assert m["verdict_vs_persistence"] == exp._verdict([st["verdict"] for st in m["seeds"]["status"]])
    (v,) = m["verdicts"]
    assert v["id"] == "next_price_vs_persistence" and v["verdict"] == m["verdict_vs_persistence"]
    assert v["p"] == dm["fixed_b_p_value_max"]


def test_gated_cells_plug_in(tmp_path):
    """--cell lstm trains with jax.grad in the same program shape and writes finite, complete results."""
    # 2 epochs (full-batch updates, ~0.5 s each at this size): trained past its init, a history of more than one
    # row; plugging the cell in and the results' completeness do not depend on how long it trains
    m = exp.main(["--quick", "--cell", "lstm", "--epochs", "2", "--seeds", "1", "--out", str(tmp_path)])
    assert m["config"]["cell"] == "lstm" and m["config"]["method"] == "autograd"
    assert np.isfinite(m["rmse"]) and m["rmse"] > 0 and m["seeds"]["ok"] == 1
    assert (tmp_path / "fig2_forecast.png").is_file() and len(pd.read_csv(tmp_path / "history.csv")) == 2
    with pytest.raises(ValueError, match="--method bptt is the vanilla RNN's hand BPTT"):
        exp.main(["--quick", "--cell", "gru", "--method", "bptt", "--out", str(tmp_path / "gru")])


def test_variants_stage_summarises_each_variant(quick_runs):
    from experiments import stock_variants

    out, m = quick_runs("stock_variants")  # --quick --seeds 1, as the test main job runs it
    assert list(m["variants"]) == list(stock_variants.QUICK_VARIANTS)
    for name, v in m["variants"].items():
        one = json.loads((out / name / "metrics.json").read_text())
        assert v["rmse"] == one["rmse"] and v["flags"] == "--target returns --optimizer adam"
        assert v["verdict_vs_persistence"] == one["verdict_vs_persistence"]
        assert v["dm_vs_persistence"] == one["dm_vs_persistence"]
    assert [v["id"] for v in m["verdicts"]] == [f"variant:{k}_vs_persistence" for k in m["variants"]]
