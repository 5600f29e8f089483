"""End-to-end: ``python -m experiments.remedies --quick`` writes consistent numbers, tables and figures."""

import json

import numpy as np
import pandas as pd
import pytest

import experiments.remedies as exp
from rnnjax.plots import remedies as plots


@pytest.fixture(scope="module")
def quick_run(quick_runs):
    return quick_runs("remedies")  # --quick --models rnn_tanh lstm, as the main job runs it (shared with the page)


def test_quick_run_writes_everything(quick_run):
    out, m = quick_run
    assert m["figures"] == ["fig7_clipping.png", "fig8_lag_profiles_by_cell.png", "fig9_adding_problem.png",
                            "fig9b_adding_survival.png"]
    for name in m["figures"] + m["files"] + ["metrics.json"]:
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "metrics.json").read_text())["adding"]["models"].keys() == {"rnn_tanh", "lstm"}
    assert set(m) >= {"clipping", "adding", "lag_profiles", "timings_s", "figures", "files", "quick", "seed"}


def test_clipping_numbers_agree_with_the_table(quick_run):
    out, m = quick_run
    frame = pd.read_csv(out / "clipping.csv")
    tau = m["clipping"]["tau"]
    assert len(m["clipping"]["runs"]) == 8  # two seeds x two learning rates, each without and with clipping
    for r in m["clipping"]["runs"]:
        rows = frame[(frame["lr"] == r["lr"]) & (frame["clipped"] == (r["clip_norm"] is not None))
                     & (frame["seed"] == r["seed"])]
        assert len(rows) == (m["clipping"]["steps"] if r["finite"] else r["first_nonfinite_step"])
        if r["clip_norm"] is not None:
            assert r["finite"]
            np.testing.assert_allclose(rows["grad_norm_clipped"], np.minimum(rows["grad_norm"], tau), rtol=1e-6)
            assert r["fraction_clipped"] == pytest.approx(float((rows["grad_norm"] > tau).mean()))
        else:
            assert r["fraction_clipped"] == 0.0
            np.testing.assert_allclose(rows["grad_norm_clipped"], rows["grad_norm"])
        assert r["last_finite_loss"] == pytest.approx(float(rows["loss"].iloc[-1]), rel=1e-6)
        assert r["final_loss"] == (r["last_finite_loss"] if r["finite"] else None)  # a diverged run has no result


def test_adding_summary_agrees_with_curves(quick_run):
    out, m = quick_run
    a = m["adding"]
    curves = pd.read_csv(out / "adding_curves.csv")
    assert a["baseline_mse"] == pytest.approx(1 / 6)
    assert abs(a["baseline_mse_on_test_set"] - 1 / 6) < 0.06  # 64 test sequences in --quick
    for name, r in a["models"].items():
        c = curves[curves["model"] == name]
        assert sorted(c["seed"].unique()) == list(range(r["num_seeds"]))
        for s in r["seeds"]:
            cs = c[c["seed"] == s["seed"]].sort_values("step")
            np.testing.assert_allclose(cs["mse_smooth"].iloc[: a["smoothing_window"]],
                                       np.cumsum(cs["mse"].iloc[: a["smoothing_window"]]) /
                                       np.arange(1, min(len(cs), a["smoothing_window"]) + 1), rtol=1e-5)
            below = np.flatnonzero(cs["mse_smooth"].to_numpy() < a["threshold"])
            assert s["steps_to_mse_0.01"] == (int(below[0]) + 1 if below.size else None)
            assert s["test_mse"] is not None and s["test_mse"] > 0


def test_lag_profiles_table(quick_run):
    out, m = quick_run
    lag = pd.read_csv(out / "lag_profiles.csv")
    T = m["adding"]["T"]
    lstm = lag[(lag["model"] == "lstm") & (lag["stage"] == "init") & (lag["seed"] == 0)]
    assert set(lstm["part"]) == {"state", "h", "c"} and len(lstm) == 3 * T - 1  # c from lag 1
    rnn = lag[(lag["model"] == "rnn_tanh") & (lag["stage"] == "trained")]
    assert set(rnn["part"]) == {"state", "h"}
    # at lag 0 the loss sees only h_T, so the LSTM's whole-state norm equals its h-part
    at0 = lstm[lstm["lag"] == 0].set_index("part")["log10_norm"]
    assert at0["state"] == pytest.approx(at0["h"], abs=1e-4)
    g = m["lag_profiles"]["models"]["lstm"]["init"]["per_seed"][0]
    s = lstm[lstm["part"] == "state"].sort_values("lag")["log10_norm"].to_numpy()
    assert g["log10_gain_state"] == pytest.approx(s[-1] - s[0], abs=1e-5)


def test_figures_redraw_from_saved_files(quick_run, tmp_path):
    out, m = quick_run
    plots.plot_clipping(pd.read_csv(out / "clipping.csv"), json.loads((out / "clipping.json").read_text()),
                        path=tmp_path / "a.png")
    plots.plot_lag_profiles(pd.read_csv(out / "lag_profiles.csv"), path=tmp_path / "b.png")
    adding = json.loads((out / "adding.json").read_text())
    plots.plot_adding(pd.read_csv(out / "adding_curves.csv"), adding, path=tmp_path / "c.png")
    solve = {k: exp.time_to_solve(r, adding["budget"]) for k, r in adding["models"].items()}
    plots.plot_adding_survival({k: t for k, (t, _) in solve.items()}, {k: e for k, (_, e) in solve.items()},
                               adding["budget"], path=tmp_path / "d.png")
    assert all((tmp_path / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in ("a.png", "b.png", "c.png", "d.png"))


def test_help_and_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        exp.main(["--help"])
    assert "--adding-T" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        exp.main(["--adding-steps", "0"])
    assert stop.value.code == 2 and "argument --adding-steps: must be an integer >= 1" in capsys.readouterr().err


def test_chunks_continue_one_adam_run():
    """Two chunks of 6 updates give the curve and parameters of one chunk of 12 (Adam state carried over)."""
    import jax
    import jax.numpy as jnp

    members = (("rnn_tanh", 2),)
    params0 = exp._compiled(jax.random.PRNGKey(0), program=exp._Init("rnn", members, 4))
    long = exp._Chunk("rnn", "tanh", 12, 4, 10, 3e-3, 1.0)
    start = lambda: (params0, jax.vmap(long.optimizer().init)(params0), jnp.ones(2, bool), jax.random.PRNGKey(1))
    keys = exp.data_keys(jax.random.PRNGKey(1), members)
    p12, _, _, m12, _ = exp._compiled(*start()[:3], keys, jnp.int32(0), program=long)
    half = long._replace(steps=6)
    p, o, a, m1, _ = exp._compiled(*start()[:3], keys, jnp.int32(0), program=half)
    p6, _, _, m2, _ = exp._compiled(p, o, a, keys, jnp.int32(6), program=half)
    np.testing.assert_allclose(np.concatenate([m1, m2], 1), m12, rtol=1e-5)
    np.testing.assert_allclose(p6.cell.W_hh, p12.cell.W_hh, rtol=1e-5, atol=1e-7)
    assert m12.shape == (2, 12) and not np.allclose(m12[:, 0], m12[:, -1])  # it trains


def test_the_hand_bptt_chunk_equals_the_autograd_chunk(x64):
    """The vanilla groups' hand-BPTT updates (the CPU default) are jax.grad's, to float64 round-off."""
    import jax
    import jax.numpy as jnp

    def both_methods(activation, member):  # a group's float64 start (its own init), then one chunk by each method
        params0 = exp._Init("rnn", ((member, 2),), 5)(jax.random.PRNGKey(0))
        params0 = jax.tree.map(lambda a: a.astype(jnp.float64), params0)
        auto = exp._Chunk("rnn", activation, 8, 4, 10, 3e-3, 1.0, "autograd")
        state = (params0, jax.vmap(auto.optimizer().init)(params0), jnp.ones(2, bool),
                 exp.data_keys(jax.random.PRNGKey(1), ((member, 2),)), jnp.int32(0))
        return auto(*state), auto._replace(method="bptt")(*state)

    # the experiment's _Init and _Chunk programs, both groups in one compiled program (not 6 programs and ~25 eager
    # operations): the same computations, each method's chunk from the same start
    groups = (("tanh", "rnn_tanh"), ("relu", "irnn"))
    for (p_a, _, _, m_a, _), (p_h, _, _, m_h, _) in jax.jit(lambda: [both_methods(*g) for g in groups])():
        assert p_a.cell.W_hh.dtype == jnp.float64
        np.testing.assert_allclose(m_h, m_a, rtol=1e-10)
        for a, h in zip(jax.tree.leaves(p_a), jax.tree.leaves(p_h), strict=True):
            np.testing.assert_allclose(h, a, rtol=1e-9, atol=1e-12)
    assert exp.gradient_method("rnn") == ("bptt" if jax.default_backend() == "cpu" else "autograd")
    assert exp.gradient_method("lstm") == "autograd"


def test_training_stops_after_the_chunk_where_every_run_solved(monkeypatch):
    """With a threshold every run meets at once, a group trains one chunk, not the whole budget."""
    import jax

    cfg = exp.build_parser().parse_args(["--adding-steps", "30", "--batch", "4", "--hidden", "4", "--adding-T", "10"])
    monkeypatch.setattr(exp, "CHUNK", 10)
    keys = jax.random.split(jax.random.PRNGKey(2))
    _, _, mse, finite, _, solved = exp.train_until_solved(cfg, "rnn", "tanh", (("rnn_tanh", 2),), *keys)
    assert mse.shape == (2, 30) and finite.all() and (solved < 0).all()  # nothing solves: the whole budget
    monkeypatch.setattr(exp, "THRESHOLD", 10.0)
    _, _, mse, _, _, solved = exp.train_until_solved(cfg, "rnn", "tanh", (("rnn_tanh", 2),), *keys)
    assert mse.shape == (2, 10) and (solved == 0).all()  # solved at once: one chunk


def test_a_gradient_that_reaches_exactly_zero_is_counted_not_averaged():
    """log(tiny) steps (an exactly-zero backward signal) leave a sequence out of the geometric mean."""
    tiny = float(np.log(np.finfo(np.float32).tiny))
    good = -0.5 * np.arange(6, dtype=np.float32)  # ln-norm falling 0.5 nats per lag
    dead = good.copy()
    dead[3:] = good[2] + tiny * np.arange(1, 4)  # exactly 0 from lag 3: log(tiny) added per lag
    profiles = {"state": np.stack([good, dead])[None], "h": np.stack([good, good])[None]}
    rows, gains = exp._profile_rows("m", "init", profiles, 0, np.arange(6))
    assert gains["sequences_exactly_zero"] == {"state": 1, "h": 0}
    assert gains["log10_gain_state"] == pytest.approx(-2.5 / np.log(10), rel=1e-6)  # the good sequence alone
    all_dead = {"state": np.stack([dead, dead])[None], "h": np.stack([good, good])[None]}
    rows, gains = exp._profile_rows("m", "init", all_dead, 0, np.arange(6))
    assert gains["log10_gain_state"] is None and [r["part"].iloc[0] for r in rows] == ["h"]


def test_clipping_counts_intervals_and_fisher_tests(quick_run):
    """Per setting the non-finite count matches the runs, its interval is scipy's beta quantiles (Clopper-Pearson),
    and each lr's verdict carries scipy's Fisher p; ids do not depend on the seed base."""
    import scipy.stats

    _, m = quick_run
    c = m["clipping"]
    for st in c["settings"]:
        rs = [r for r in c["runs"] if r["lr"] == st["lr"] and r["clip_norm"] == st["clip_norm"]]
        k, n = sum(not r["finite"] for r in rs), len(rs)
        assert (st["nonfinite"], st["runs"]) == (k, n) == (k, c["seeds"])
        hi = 1.0 if k == n else scipy.stats.beta.ppf(0.975, k + 1, n - k)
        assert st["ci_high"] == pytest.approx(hi)
    ids = [v["id"] for v in m["verdicts"]]
    assert ids[: len(c["comparisons"])] == [f"clip:lr={lr:g}" for lr in (1e-4, 1e-2)]
    for v, cmp in zip(m["verdicts"], c["comparisons"], strict=False):
        p = scipy.stats.fisher_exact([[cmp["clipped_nonfinite"], c["seeds"] - cmp["clipped_nonfinite"]],
                                      [cmp["unclipped_nonfinite"], c["seeds"] - cmp["unclipped_nonfinite"]]]).pvalue
        assert v["p"] == pytest.approx(p) and set(v) == {"id", "claim", "test", "evidence", "p", "verdict"}
    assert "adding:lstm_vs_rnn_tanh" in ids


def test_survival_and_logrank_against_scipy():
    """Time to solve is censored at the budget; the log-rank p is scipy's, the word only where it rejects."""
    import scipy.stats

    fast = {"seeds": [{"steps_to_mse_0.01": t} for t in (100, 200, 300, 400, 500, 600, 700, 800)]}
    slow = {"seeds": [{"steps_to_mse_0.01": t} for t in (900, None, None, None, None, None, None, None)]}
    times, events = exp.time_to_solve(slow, 1000)
    assert times.tolist() == [900] + [1000] * 7 and events.tolist() == [True] + [False] * 7
    comparisons, verdicts = exp.compare_cells({"lstm": fast, "rnn_tanh": slow}, 1000)
    ref = scipy.stats.logrank(scipy.stats.CensoredData(uncensored=[100, 200, 300, 400, 500, 600, 700, 800]),
                              scipy.stats.CensoredData(uncensored=[900], right=[1000] * 7))
    assert [v["id"] for v in verdicts] == ["adding:lstm_vs_rnn_tanh"]
    assert verdicts[0]["p"] == pytest.approx(ref.pvalue) and ref.pvalue < 0.05
    assert verdicts[0]["verdict"] == "lstm solves faster"
    same = {"seeds": [{"steps_to_mse_0.01": None}] * 4}
    _, verdicts = exp.compare_cells({"lstm": same, "rnn_tanh": same}, 1000)
    assert verdicts[0]["p"] is None and verdicts[0]["verdict"] == "not distinguishable with 4 seeds"
