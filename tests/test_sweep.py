"""rnnjax.sweep: equal to point-by-point runs (the vanilla training, a user's cell with a tuple carry),
integer axes stay integers, compiled once, blocks, summaries, a store on disk that resumes bit for bit."""

from __future__ import annotations

import contextlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.tree_util import Partial

import rnnjax
from rnnjax.sweeps import default_block, load_sweep, run_bytes, sweep, train_sweep

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # jax._src.dispatch.BACKEND_COMPILE_EVENT


@contextlib.contextmanager
def count_compiles():
    """Counts XLA compilations (persistent-cache hits included) inside the block: ``with ... as n: ...; n[0]``."""
    n = [0]

    def listener(event, duration, **kwargs):
        if event == COMPILE_EVENT:
            n[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield n
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


# a user's own cell with a tuple carry (h, c): c_t = a c_{t-1} + (1 - a) tanh(x W_xh + h W_hh + b), h_t = tanh(c_t)
D, H, T = 3, 4, 6


def _init(key, D, H):
    k1, k2 = jax.random.split(key)
    return {"W_xh": jax.random.normal(k1, (D, H)) / np.sqrt(D), "W_hh": jax.random.normal(k2, (H, H)) / np.sqrt(H),
            "b_h": jnp.zeros(H)}


def _carry0(p):
    z = jnp.zeros(p["b_h"].shape, p["b_h"].dtype)
    return (z, z)


def _step(p, carry, x):
    h, c = carry
    c = 0.5 * c + 0.5 * jnp.tanh(x @ p["W_xh"] + h @ p["W_hh"] + p["b_h"])
    return (jnp.tanh(c), c)


CELL = rnnjax.Cell(_init, _carry0, _step, lambda carry: carry[0])
LOSS = rnnjax.make_loss(CELL, "mse_last")
XS = np.random.default_rng(7).standard_normal((2, 5, T, D), np.float32)  # N = 2 mini-batches of B = 5 sequences
YS = np.tanh(XS.sum((-1, -2)))[..., None] * np.float32(0.5)  # (2, 5, 1); NumPy: nothing compiled at import


def user_run(rho, seed, lr):
    """Train the tuple-carry cell from W_hh scaled by rho, seed's init, Adam at lr, 4 steps: the final loss."""
    model = rnnjax.init_model(CELL, jax.random.PRNGKey(seed), D, H, 1)
    model = model._replace(cell=model.cell | {"W_hh": rho * model.cell["W_hh"]})
    _, history = rnnjax.fit(LOSS, model, (XS, YS), optax.adam(lr), num_steps=4)
    return {"loss": history.loss[-1], "seed": seed}


AXES = dict(rho=np.array([0.5, 1.5]), seed=np.array([3, 1, 4]), lr=np.array([1e-2, 1e-1]))


@pytest.fixture(scope="module")
def user_sweep():
    return sweep(user_run, **AXES)


def test_a_user_cell_swept_equals_point_by_point(user_sweep):
    assert user_sweep["loss"].shape == (2, 3, 2)
    assert user_sweep["seed"].dtype == np.int32  # integer axes stay integers
    point = jax.jit(user_run)  # each point by itself, no vmap (one program for the 12, not ~10 s of eager ops)
    for i, rho in enumerate(AXES["rho"]):
        for j, seed in enumerate(AXES["seed"]):
            for k, lr in enumerate(AXES["lr"]):
                one = point(np.float32(rho), np.int32(seed), np.float32(lr))
                np.testing.assert_allclose(user_sweep["loss"][i, j, k], one["loss"], rtol=1e-6)
                assert user_sweep["seed"][i, j, k] == seed
    assert len(np.unique(user_sweep["loss"])) == 12  # every point trained on its own values


def test_compiled_once(user_sweep):
    new = dict(rho=np.array([0.7, 1.1]), seed=np.array([9, 8, 0]), lr=np.array([3e-2, 5e-2]))  # same lengths
    with count_compiles() as n:
        again = sweep(user_run, **new)
    assert n[0] == 0
    assert not np.allclose(again["loss"], user_sweep["loss"])
    with count_compiles() as n:
        sweep(lambda **p: user_run(**p), **new)  # a fresh closure is a new run: it compiles again
    assert n[0] >= 1


def test_batch_size_maps_the_runs_a_few_at_a_time(user_sweep):
    """batch_size=1: each device runs its points one after another, each the unbatched program, so every point
    equals its own jitted run bit for bit; batch_size=5 (12 runs; on one device chunks of 5, 5 and 2) equals the
    default."""
    one = sweep(user_run, batch_size=1, **AXES)
    point = jax.jit(user_run)
    for i, rho in enumerate(AXES["rho"]):
        for j, seed in enumerate(AXES["seed"]):
            for k, lr in enumerate(AXES["lr"]):
                alone = point(np.float32(rho), np.int32(seed), np.float32(lr))
                np.testing.assert_array_equal(one["loss"][i, j, k], alone["loss"])
    five = sweep(user_run, batch_size=5, **AXES)
    np.testing.assert_allclose(five["loss"], user_sweep["loss"], rtol=1e-6)  # XLA vectorises 5 runs unlike 12
    np.testing.assert_array_equal(five["seed"], user_sweep["seed"])


def test_train_sweep_with_new_data_compiles_nothing():
    rng = np.random.default_rng(1)
    data = lambda: (np.eye(4, dtype=np.float32)[rng.integers(0, 4, (2, 5))], rng.integers(0, 4, (2, 5)))
    kw = dict(hidden_size=3, loss="xent", num_steps=2, learning_rate=0.1, fast_compile=True)
    a = train_sweep([0.9, 1.1], [0, 1], *data(), **kw)[1].loss
    with count_compiles() as n:
        b = train_sweep([0.8, 1.2], [2, 3], *(xy := data()), **kw)[1].loss  # data are traced: a Partial's arrays
    assert n[0] == 0 and not np.allclose(a, b)
    one = train_sweep([0.8, 1.2], [2, 3], *xy, batch_size=1, **kw)[1].loss  # passed through to sweep
    np.testing.assert_allclose(one, b, rtol=1e-6)


def test_unchanged_from_the_sweeps_before_rnnjax_sweep():
    """train/stability/lag-spectra/Lyapunov sweeps against values saved from the code before sweep (ef104bf)."""
    from rnnjax.sweeps import lag_spectra_sweep, lyapunov_sweep, stability_sweep

    before = np.load(os.path.join(os.path.dirname(__file__), "data", "sweeps_before.npz"))
    rng = np.random.default_rng(0)
    codes, ys = rng.integers(0, 4, size=(3, 8)), rng.integers(0, 4, size=(3, 8))
    xs = np.eye(4, dtype=np.float32)[codes]
    rhos, seeds = [0.5, 1.3, 60.0], [0, 2]
    net = dict(hidden_size=5, output_size=4, activation="tanh", fast_compile=True)
    _, h = train_sweep(rhos, seeds, xs, ys, hidden_size=5, loss="xent", num_steps=5, learning_rate=0.05,
                       activation="relu", fast_compile=True)
    got = {f"train_{k}": v for k, v in h._asdict().items()}
    got |= {f"stab_{k}": v for k, v in stability_sweep(rhos[:2], seeds, xs[0], ys[0], lengths=[4, 8],
                                                       **net).items()}
    got |= {f"lag_{k}": v for k, v in lag_spectra_sweep(rhos[:2], seeds, xs, ys, **net).items()}
    got["lyap"] = lyapunov_sweep(rhos[:2], seeds, xs[0], warmup=2, **net)
    assert sorted(got) == sorted(before.files)
    for k in before.files:  # float32 round-off: the spectral radius is now taken of W_hh / max|W_ij| (issue 20)
        if k == "lag_log_sigma":  # the small singular values of a product are round-off of ~0 (they move with any
            # change of summation order); the top one is a measurement
            np.testing.assert_allclose(got[k][..., 0], before[k][..., 0], rtol=1e-5, err_msg=k)
            np.testing.assert_allclose(got[k], before[k], atol=0.1, err_msg=k)
            continue
        # float32 round-off apart: the QR method now rescales its frame's columns (issue 20); the values were saved
        # on another CPU, and XLA's vector width sets the summation order (on an AVX-512 Xeon the spectral norm of
        # dL/dW_hh at rho 1.3 moves 1.5e-6 relative; every other value stays within 8e-7)
        loose = k in ("stab_log_radius", "lyap", "train_grad_whh_spec")
        np.testing.assert_allclose(got[k], before[k], rtol=1e-5 if loose else 1e-6, atol=1e-7, err_msg=k)
    assert not before["train_finite"][2].all()  # rho = 60 went non-finite, and still does


def last_loss(result):
    return result["loss"]


def _small(rho, seed):
    """A cheap run with a history: x_{t+1} = tanh(rho W x_t), W from seed (T = 5 steps); loss = sum (rho x_T)^2."""
    W = jax.random.normal(jax.random.PRNGKey(seed), (3, 3))
    xs = jax.lax.scan(lambda x, _: (jnp.tanh(rho * W @ x), jnp.tanh(rho * W @ x)), jnp.ones(3), None, length=5)[1]
    return {"loss": jnp.sum((rho * xs[-1]) ** 2), "history": xs}


SMALL = dict(rho=np.array([0.5, 1.0, np.float32(1e30), 1.5, 2.0]), seed=np.arange(2))  # rho 1e30: overflows


def test_blocks_summary_and_a_store_that_resumes(tmp_path):
    whole = sweep(_small, **SMALL)  # 10 runs: one block
    assert whole["history"].shape == (5, 2, 5, 3)
    point = jax.jit(_small)  # each point by itself, no vmap (one program for the 5, not ~15 eager ones)
    for rho_i, rho in enumerate(SMALL["rho"]):
        one = point(np.float32(rho), np.int32(1))
        np.testing.assert_allclose(whole["history"][rho_i, 1], one["history"], rtol=1e-5, atol=1e-6)  # alone vs vmapped
    seen = []
    blocked = sweep(_small, block=4, progress=lambda *a: seen.append(a), **SMALL)  # 4 + 4 + 2 (padded to 4)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # XLA vectorises 4 runs unlike 10
    jax.tree.map(close, blocked, whole)
    assert [s[:2] for s in seen] == [(1, 3), (2, 3), (3, 3)] and all(s[2] >= 0 for s in seen)
    assert seen[0][3] > 0 and seen[-1][3] == 0.0  # the estimated time left: none at the end
    kept = sweep(_small, summary=last_loss, **SMALL)  # only the loss leaves the program
    np.testing.assert_allclose(kept, whole["loss"], rtol=1e-5, atol=1e-6)

    out = tmp_path / "store"

    class Killed(Exception):
        pass

    def kill_after_two(done, total, elapsed, left):
        seen.append((done, total, elapsed, left))
        if done == 2:
            raise Killed

    seen.clear()
    with pytest.raises(Killed):
        sweep(_small, block=4, out=out, progress=kill_after_two, **SMALL)
    assert [s[:2] for s in seen] == [(1, 3), (2, 3)] and seen[0][3] > 0  # ~ block 1's time x the 2 blocks left
    np.testing.assert_allclose(seen[1][3], seen[1][2] / 2, rtol=0.5)  # 2 blocks in elapsed, 1 left: half of it
    assert sorted(p.name for p in out.glob("block_*.npz")) == ["block_000000.npz", "block_000001.npz"]
    with pytest.raises(ValueError, match=r"is incomplete: 1 of 3 blocks missing"):
        load_sweep(out)
    first = out / "block_000000.npz"
    mtime = first.stat().st_mtime_ns
    seen.clear()
    resumed = sweep(_small, block=4, out=out, progress=lambda *a: seen.append(a), **SMALL)
    assert first.stat().st_mtime_ns == mtime  # finished blocks are skipped, not recomputed
    assert [(s[0], s[1], s[3]) for s in seen] == [(1, 3, None), (2, 3, None), (3, 3, 0.0)]  # read back: no estimate
    uninterrupted = sweep(_small, block=4, **SMALL)
    jax.tree.map(np.testing.assert_array_equal, resumed, uninterrupted)  # bit for bit
    store = load_sweep(out)
    np.testing.assert_array_equal(store.results["loss"], resumed["loss"])
    np.testing.assert_array_equal(store.results["history"], resumed["history"])
    np.testing.assert_array_equal(store.axes["rho"], SMALL["rho"].astype(np.float32))
    assert store.axes["seed"].dtype == np.int32 and json.loads((out / "grid.json").read_text())["block"] == 4
    assert np.load(first)["loss"].shape == (4,)  # one block: one line of NumPy
    expected = ~np.isfinite(resumed["history"]).reshape(5, 2, -1).all(-1) | ~np.isfinite(resumed["loss"])
    assert expected[2].all() and not expected[[0, 1, 3, 4]].any()  # rho = 1e30 overflows the loss, alone
    np.testing.assert_array_equal(store.nonfinite, expected)  # runs holding NaN/inf are flagged, not silent

    with pytest.raises(ValueError, match=r"^out=.* holds another sweep: its axes is .* there, .* here; resume"):
        sweep(_small, block=4, out=out, rho=np.linspace(0.5, 2.0, 6), seed=np.arange(2))
    with pytest.raises(ValueError, match=r"holds another sweep: its block is 4 there, 5 here"):
        sweep(_small, block=5, out=out, **SMALL)
    with pytest.raises(ValueError, match=r"holds another sweep: its summary"):
        sweep(_small, block=4, out=out, summary=last_loss, **SMALL)
    with pytest.raises(ValueError, match=r"holds another sweep: its batch_size is None there, 2 here"):
        sweep(_small, block=4, out=out, batch_size=2, **SMALL)  # round-off may follow it


def test_print_progress(capsys):
    rnnjax.sweeps.print_progress(3, 16, 12.4, 51.6)
    rnnjax.sweeps.print_progress(1, 16, 0.2, None)
    assert capsys.readouterr().err == ("sweep: block 3/16, 12 s elapsed, ~52 s left\n"
                                       "sweep: block 1/16, 0 s elapsed\n")


def test_the_default_block_follows_the_working_set():
    per_run = run_bytes(_small, rho=1.0, seed=0)
    assert 0 < per_run < 10_000  # a few 3-vectors and 3x3 matrices
    assert default_block(per_run, 2) % 2 == 0 and default_block(10**12, 2) == 2
    assert default_block(2**20, 1) == rnnjax.sweeps.BLOCK_BYTES_PER_DEVICE // 2**20
    train = Partial(rnnjax.sweeps._TrainRun(rnnjax.sweeps._Init((27, 50, 27), "gaussian", None, None), "xent", 200,
                                            1e-4, "sgd", None, "relu", False),
                    xs=np.zeros((8, 50, 27), np.float32), targets=np.zeros((8, 50), np.int32))
    assert run_bytes(train, rho=1.0, seed=0) > 200 * 50 * 50 * 4  # the gradient of W_hh at every step, at least


def _nothing(result):
    return ()


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="sweep needs at least one axis"):
        sweep(_small)
    with pytest.raises(ValueError, match=r"axis rho must be a non-empty 1-D array of values, got shape \(2, 2\)"):
        sweep(_small, rho=np.ones((2, 2)), seed=np.arange(2))
    with pytest.raises(ValueError, match="axis seed must be a non-empty 1-D array of values, got shape \\(0,\\)"):
        sweep(_small, rho=np.ones(2), seed=[])
    with pytest.raises(ValueError, match="axis rho holds a non-finite value: nan"):
        sweep(_small, rho=[1.0, np.nan], seed=np.arange(2))
    with pytest.raises(ValueError, match="axis rho must hold numbers, got dtype <U1"):
        sweep(_small, rho=["a"], seed=np.arange(2))
    with pytest.raises(ValueError, match="block must be a positive integer, got 0"):
        sweep(_small, block=0, **SMALL)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        sweep(_small, batch_size=0, **SMALL)
    with pytest.raises(ValueError, match="run must be a function"):
        sweep(3, **SMALL)
    with pytest.raises(ValueError, match="summary must be a function or None"):
        sweep(_small, summary=1, **SMALL)
    with pytest.raises(ValueError, match=r"run \(or summary\) must return at least one array, got \(\)"):
        sweep(_small, summary=_nothing, **SMALL)
    with pytest.raises(ValueError, match="holds no sweep"):
        load_sweep(tmp_path)
