"""train(): its history against a hand-run of optax steps (SGD + clipping on batches, Adam on single
sequences with the state carried across segments), the hand BPTT and jax.grad giving the same run,
global-norm clipping, a diverging run halted and reported, vmap over parameter sets, bad input.
fit(): a run continued from its state equals one run bit for bit, compiled once, its progress
callback, and its up-front errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import numpy_params, zeros

import rnnjax
from rnnjax import FitState, RNNParams, describe_nonfinite, first_nonfinite_step, fit, make_loss, make_optimizer, train
from rnnjax.bptt import loss_and_grad_with_state
from rnnjax.train import _fit, check_leading_axis, lanczos_spectral_norm, spectral_norm, top_eigenvalue_tridiagonal


def random_params(rng, D, H, O, dtype=None) -> RNNParams:
    """NumPy draws put on the device (``jax.device_put``: no program, where ``jnp.asarray`` compiles one per shape)."""
    arrays = (rng.normal(size=(D, H)), rng.normal(size=(H, H)) / np.sqrt(H), 0.1 * rng.normal(size=H),
              rng.normal(size=(H, O)), 0.1 * rng.normal(size=O))
    return RNNParams(*jax.device_put(tuple(a.astype(dtype or a.dtype) for a in arrays)))


@functools.cache  # one optimizer and jitted step per configuration, shared by the calls that use it
def hand_step(loss, learning_rate, optimizer, clip_norm, activation):
    opt = make_optimizer(learning_rate, clip_norm=clip_norm, name=optimizer)
    init = jax.jit(opt.init)  # one program, not one per leaf shape

    @jax.jit
    def step(params, opt_state, x, y, h):
        value, grads, h_last = loss_and_grad_with_state(params, x, y, loss=loss, activation=activation, h0=h)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value, grads, h_last

    return init, step


def hand_run(params, xs, targets, *, loss, num_steps, learning_rate, optimizer, clip_norm, activation, h0,
             carry_state):
    """What train() promises, written as a plain Python loop over optax steps (one jitted step)."""
    init, step = hand_step(loss, learning_rate, optimizer, clip_norm, activation)
    opt_state, h, rows = init(params), h0, []
    for s in range(num_steps):
        params, opt_state, value, grads, h_last = step(params, opt_state, xs[s % len(xs)], targets[s % len(xs)], h)
        G = np.asarray(grads.W_hh)
        norm = float(np.sqrt(sum(np.sum(np.asarray(g) ** 2) for g in grads)))
        rows.append((float(value), norm, norm if clip_norm is None else min(norm, clip_norm),
                     float(np.linalg.norm(G)), float(np.linalg.norm(G, 2))))
        if carry_state:
            h = h_last
    return params, np.array(rows)


def assert_history_matches(history, rows):
    for i, field in enumerate(("loss", "grad_norm", "grad_norm_clipped", "grad_whh_fro", "grad_whh_spec")):
        np.testing.assert_allclose(np.asarray(getattr(history, field)), rows[:, i], rtol=1e-10, err_msg=field)
    assert np.asarray(history.finite).all()


def test_sgd_with_clipping_on_batches_equals_a_hand_run_and_autograd(x64):
    rng = np.random.default_rng(0)
    p = random_params(rng, 2, 4, 1)
    xs = jax.device_put(rng.normal(size=(3, 5, 4, 2)))  # N = 3 batches of B = 5 sequences, T = 4
    ys = jax.device_put(rng.normal(size=(3, 5, 1)))
    kw = dict(loss="mse_last", num_steps=7, learning_rate=0.3, optimizer="sgd", clip_norm=0.9, activation="tanh")
    params, history = train(p, xs, ys, **kw)
    want_params, rows = hand_run(p, xs, ys, h0=None, carry_state=False, **kw)
    assert_history_matches(history, rows)
    assert (rows[:, 1] > 0.9).any() and (rows[:, 1] < 0.9).any()  # clipping was both active and idle
    for a, b in zip(params, want_params, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-14)
    params_auto, history_auto = train(p, xs, ys, method="autograd", **kw)
    for field in history._fields[:-1]:
        np.testing.assert_allclose(np.asarray(getattr(history_auto, field)), np.asarray(getattr(history, field)),
                                   rtol=1e-10)


def test_adam_with_the_state_carried_across_segments_equals_a_hand_run(x64):
    rng = np.random.default_rng(1)
    p = random_params(rng, 3, 4, 3)
    xs = jax.device_put(rng.normal(size=(4, 6, 3)))  # N = 4 single sequences (segments), T = 6
    ys = jax.device_put(rng.integers(0, 3, size=(4, 6)))
    h0 = jax.device_put(rng.normal(size=4))
    kw = dict(loss="xent", num_steps=6, learning_rate=0.05, optimizer="adam", clip_norm=None, activation="relu")
    params, history = train(p, xs, ys, h0=h0, carry_state=True, **kw)
    want_params, rows = hand_run(p, xs, ys, h0=h0, carry_state=True, **kw)
    assert_history_matches(history, rows)
    np.testing.assert_allclose(np.asarray(params.W_hh), np.asarray(want_params.W_hh), rtol=1e-10)
    _, rows_reset = hand_run(p, xs, ys, h0=h0, carry_state=False, **kw)
    assert not np.allclose(rows_reset[1:, 0], rows[1:, 0])  # carrying the state is not a no-op


def test_global_norm_clipping():
    """||clip(g)|| = tau above tau, g untouched below it, and clipping twice equals clipping once."""
    g = RNNParams(*jax.device_put(tuple(np.full(shape, value, np.float32) for shape, value in
                                        [((2, 3), 3.0), ((3, 3), -2.0), (3, 1.0), ((3, 1), 4.0), (1, 1.0)])))

    @jax.jit
    def clip(grads, tau):  # SGD with learning rate 1 updates by -clip(g)
        opt = make_optimizer(1.0, clip_norm=tau)
        return jax.tree.map(jnp.negative, opt.update(grads, opt.init(grads))[0])

    tree_norm = jax.jit(optax.tree.norm)
    norm = float(tree_norm(g))
    assert norm == pytest.approx(np.sqrt(6 * 9 + 9 * 4 + 3 + 3 * 16 + 1))
    clipped = clip(g, 5.0)
    assert float(tree_norm(clipped)) == pytest.approx(5.0, rel=1e-6)
    for a, b in zip(clipped, g, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b) * 5.0 / norm, rtol=1e-6)  # same direction
    for a, b in zip(clip(g, 2 * norm), g, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # below the threshold: untouched
    for a, b in zip(clip(clipped, 5.0), clipped, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)  # idempotent


def test_a_diverging_run_is_halted_and_reported(x64):
    rng = np.random.default_rng(2)
    p = random_params(rng, 2, 3, 1)
    xs = jax.device_put(rng.normal(size=(1, 4, 5, 2)))
    ys = jax.device_put(rng.normal(size=(1, 4, 5, 1)))
    kw = dict(loss="mse", learning_rate=1e8, activation="linear")
    params, history = train(p, xs, ys, num_steps=12, **kw)
    k = int(first_nonfinite_step(history))
    assert 0 < k < 12
    finite = np.asarray(history.finite)
    assert finite[:k].all() and not finite[k:].any()
    assert all(np.isfinite(np.asarray(a)).all() for a in params)  # never a NaN handed back
    kept, _ = train(p, xs, ys, num_steps=k, **kw)  # the parameters reached by the last finite step
    for a, b in zip(params, kept, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    message = describe_nonfinite(history)
    assert message.startswith(f"training went non-finite at step {k} of 12")
    assert "grad_norm" in message or "loss" in message
    stacked = jax.tree.map(lambda h: np.stack([h, np.ones_like(h) if h.dtype == bool else h]), history)
    np.testing.assert_array_equal(np.asarray(first_nonfinite_step(stacked)), [k, -1])  # works on vmapped histories


# One float32 classification run (D = 3, H = 20, O = 3, N = 4 sequences of T = 10, 30 steps), shared by
# test_vmap_over_parameter_sets_equals_separate_runs and test_train_records_the_spectral_norm_by_lanczos_or_svd,
# so its separate runs are compiled once.
RUN32 = dict(loss="xent", num_steps=30, learning_rate=0.05, activation="tanh")


def float32_run_data(rng):
    p = random_params(rng, 3, 20, 3, np.float32)
    return p, *jax.device_put((rng.normal(size=(4, 10, 3)).astype(np.float32), rng.integers(0, 3, size=(4, 10))))


def test_vmap_over_parameter_sets_equals_separate_runs():
    rng = np.random.default_rng(3)
    sets = [float32_run_data(rng)[0] for _ in range(2)]
    _, xs, ys = float32_run_data(rng)
    run = lambda p: train(p, xs, ys, **RUN32)
    params, history = jax.vmap(run)(jax.tree.map(lambda *a: np.stack(a), *sets))
    for i, p in enumerate(sets):
        params_i, history_i = run(p)
        np.testing.assert_allclose(np.asarray(history.grad_whh_spec)[i], np.asarray(history_i.grad_whh_spec),
                                   rtol=1e-5)
        np.testing.assert_allclose(np.asarray(params.W_hh)[i], np.asarray(params_i.W_hh), rtol=1e-5, atol=1e-7)
    assert describe_nonfinite(history_i) is None


def test_spectral_norm_is_the_largest_singular_value():
    A = np.random.default_rng(4).normal(size=(5, 3))
    assert float(spectral_norm(jax.device_put(A.astype(np.float32)))) == pytest.approx(np.linalg.norm(A, 2), rel=1e-6)


def _with_singular_values(rng, sigma, m, n):
    U = np.linalg.qr(rng.normal(size=(m, m)))[0][:, : len(sigma)]
    V = np.linalg.qr(rng.normal(size=(n, n)))[0][:, : len(sigma)]
    return (U * sigma) @ V.T


# compiled whole, as fit runs it (eager, its loop is ~100 programs of one operation each)
LANCZOS = jax.jit(lanczos_spectral_norm, static_argnames="steps")


def test_lanczos_spectral_norm_against_the_svd(x64):
    rng = np.random.default_rng(6)
    clustered = _with_singular_values(rng, 1.0 - 1e-3 * np.arange(40), 50, 50)  # a top cluster 0.1% apart
    cases = [rng.normal(size=(7, 5)), rng.normal(size=(50, 50)) * 1e-30, clustered]
    for A in cases:
        exact = np.linalg.norm(A, 2)
        v = jax.device_put(np.ones(A.shape[1]))
        # as many steps as dimensions: the Krylov space is everything, the estimate exact (up to the lost
        # orthogonality of Lanczos without re-orthogonalisation, ~1e-9 here)
        sigma, x = LANCZOS(jax.device_put(A), v, steps=A.shape[1])
        assert float(sigma) == pytest.approx(exact, rel=1e-8)
        # x approximates the top right singular vector (from T^(2^5): fine for a warm start; on the cluster, a
        # vector of the cluster's top few -- which one moves with float rounding, e.g. XLA's optimisation level)
        rel = 3e-3 if A is clustered else 1e-4
        assert np.linalg.norm(A @ np.asarray(x)) == pytest.approx(exact, rel=rel)
        few, _ = LANCZOS(jax.device_put(A), v, steps=3)  # fewer steps: a lower bound
        assert float(few) <= exact * (1 + 1e-12)
    # warm start: from the previous Ritz vector, 3 steps suffice for a slightly changed matrix; cold, 3 % off
    A = rng.normal(size=(50, 50))
    ones = jax.device_put(np.ones(50))
    _, x = LANCZOS(jax.device_put(A), ones, steps=50)
    B = A + 1e-3 * rng.normal(size=(50, 50))
    warm, _ = LANCZOS(jax.device_put(B), x, steps=3)
    cold, _ = LANCZOS(jax.device_put(B), ones, steps=3)
    exact = np.linalg.norm(B, 2)
    assert float(warm) == pytest.approx(exact, rel=1e-7)
    assert float(cold) < exact * (1 - 1e-2)


def test_lanczos_on_a_zero_or_non_finite_matrix_keeps_the_start_vector():
    v = jax.device_put(np.arange(1.0, 5.0, dtype=np.float32))
    sigma, x = LANCZOS(jax.device_put(np.zeros((3, 4), np.float32)), v)  # default steps, more than its 4 dimensions
    assert float(sigma) == 0.0 and np.array_equal(np.asarray(x), np.asarray(v))
    sigma, x = LANCZOS(jax.device_put(np.full((3, 4), np.nan, np.float32)), v)
    assert np.isnan(float(sigma)) and np.array_equal(np.asarray(x), np.asarray(v))


def test_top_eigenvalue_of_a_lanczos_tridiagonal(x64):
    rng = np.random.default_rng(7)
    alphas, betas = rng.uniform(1.0, 2.0, size=(4, 12)), rng.uniform(0.0, 0.5, size=(4, 12))
    top = np.asarray(jax.jit(top_eigenvalue_tridiagonal)(*jax.device_put((alphas, betas))))  # batched
    for a, b, t in zip(alphas, betas, top, strict=True):
        T = np.diag(a) + np.diag(b[:-1], 1) + np.diag(b[:-1], -1)
        assert t == pytest.approx(np.linalg.eigvalsh(T)[-1], rel=1e-12)


def test_train_records_the_spectral_norm_by_lanczos_or_svd():
    p, xs, ys = float32_run_data(np.random.default_rng(8))
    _, lz = train(p, xs, ys, **RUN32)
    _, svd = train(p, xs, ys, spec_norm="svd", **RUN32)
    np.testing.assert_allclose(np.asarray(lz.grad_whh_spec), np.asarray(svd.grad_whh_spec), rtol=2e-6)
    np.testing.assert_array_equal(np.asarray(lz.loss), np.asarray(svd.loss))  # the training itself is untouched


# ------------------------------------------------------------------------------------------ bad input

P = random_params(np.random.default_rng(5), 2, 3, 1)
XS, YS = zeros(2, 4, 2), zeros(2, 1)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(clip_norm=0.0), r"clip_norm must be > 0, got 0.0"),
    (dict(clip_norm=-1.0), r"clip_norm must be > 0, got -1.0"),
    (dict(learning_rate=0.0), r"learning_rate must be > 0, got 0.0"),
    (dict(optimizer="rmsprop"), r"unknown optimizer 'rmsprop'; expected one of \['adam', 'sgd'\]"),
    (dict(method="numeric"), r"unknown method 'numeric'; expected one of \['auto', 'autograd', 'bptt'\]"),
    (dict(spec_norm="power"), r"unknown spec_norm 'power'; expected one of \['lanczos', 'svd'\]"),
    (dict(activation="swish"), r"unknown activation 'swish'"),
    (dict(loss="huber"), r"unknown loss 'huber'"),
    (dict(num_steps=0), r"num_steps must be a positive integer, got 0"),
    (dict(xs=zeros(4, 2)), r"xs must be \(N, T, D\) or \(N, B, T, D\), got shape \(4, 2\)"),
    (dict(xs=zeros(2, 4, 3)), r"input width mismatch: xs has D=3 features per step but W_xh expects D=2"),
    (dict(targets=zeros(3, 1)), r"targets must have the same leading N as xs \(2\), got shape \(3, 1\)"),
    (dict(targets=zeros(2, 4, 1)), r"targets for loss 'mse_last' must have shape \(1,\)"),
    (dict(h0=zeros(4)), r"h0 must have shape \(3,\), got \(4,\)"),
])
def test_bad_inputs_raise(kwargs, message):
    args = dict(xs=XS, targets=YS, loss="mse_last", num_steps=3, learning_rate=0.1) | kwargs
    with pytest.raises(ValueError, match=message):
        train(P, args.pop("xs"), args.pop("targets"), **args)


# ------------------------------------------------------------------- fit: long runs, resumption, checks
# One small model, loss and optimizer shared by these tests, so their compiled programs are shared too.

CELL = rnnjax.cells.vanilla("tanh")
MSE, XENT = make_loss(CELL, "mse_last"), make_loss(CELL, "xent")
ADAM = optax.adam(optax.exponential_decay(0.05, 7, 0.5))  # a schedule: its count lives in the optimizer state


def model_params(seed):  # the model's parameters as test data: NumPy normals of std 1/sqrt(first dim.), on the device
    rng = np.random.default_rng(seed)
    draw = lambda shape: rng.normal(size=shape) / np.sqrt(shape[0])
    return numpy_params(lambda k: rnnjax.init_model(CELL, k, 2, 3, 1), draw=draw)


MODEL = model_params(2)  # a draw whose warm- and cold-started Lanczos differ clearly (9 % at step 6)
_rng = np.random.default_rng(1)  # the data in NumPy too: the tests slice and shift them there, without eager programs
XS_NP = _rng.normal(size=(3, 2, 5, 2)).astype(np.float32)  # N = 3 batches of B = 2 sequences, T = 5
YS_NP = _rng.normal(size=(3, 2, 1)).astype(np.float32)
FIT_XS, FIT_YS = jax.device_put((XS_NP, YS_NP))
ZERO = jax.device_put(np.float32(0))  # the running sum's start
init_adam = jax.jit(ADAM.init)  # a fresh optimizer state in one program, not one per leaf shape
DATA_KEY = jax.random.PRNGKey(3)


def fresh_batch(s):  # step s's own batch, drawn from fold_in(key, s)
    k1, k2 = jax.random.split(jax.random.fold_in(DATA_KEY, s))
    return jax.random.normal(k1, (2, 5, 2)), jax.random.normal(k2, (2, 1))


def w_hh_penalty(p, batch):  # 0.01 ||W_hh||_F^2, a regulariser whose steps (every 3rd) straddle the 20-step chunks
    return 0.01 * jnp.sum(p.cell.W_hh ** 2)


def running_norm(p, g, total):  # a stateful record: the running sum of ||dL/dW_hh||_F
    total = total + jnp.linalg.norm(g.cell.W_hh)
    return total, total


def readout_bias(p):
    return p.readout.b_o


RESUMABLE = dict(record=running_norm, regularizer=w_hh_penalty, regularize_every=3, monitor=readout_bias,
                 monitor_every=5)


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("batches", [(FIT_XS, FIT_YS), fresh_batch], ids=["stacked", "function"])
def test_fit_20_plus_20_steps_equal_40_bit_for_bit(batches):
    whole_p, whole = fit(MSE, MODEL, batches, ADAM, num_steps=40, record_state=ZERO, **RESUMABLE)
    p1, h1 = fit(MSE, MODEL, batches, ADAM, num_steps=20, record_state=ZERO, **RESUMABLE)
    assert isinstance(h1.state, FitState) and int(h1.state.step) == 20 and not bool(h1.state.halted)
    p2, h2 = fit(MSE, p1, batches, ADAM, num_steps=20, state=h1.state, **RESUMABLE)
    assert_trees_equal(p2, whole_p)
    for field in ("loss", "grad_norm", "finite", "extra", "monitor"):
        joined = jax.tree.map(lambda a, b: np.concatenate([a, b]), getattr(h1, field), getattr(h2, field))
        assert_trees_equal(joined, getattr(whole, field))
    assert_trees_equal(h2.state, whole.state)  # the optimizer state (Adam moments, schedule count) included
    assert int(h2.state.step) == 40 and whole.extra.shape == (40,) and whole.monitor.shape == (8, 1)
    # the pieces that carry over are real: restarting the optimizer (or the data at step 0) gives another run
    _, restarted = fit(MSE, p1, batches, ADAM, num_steps=20, state=h1.state._replace(opt_state=init_adam(p1)),
                       **RESUMABLE)
    _, from_zero = fit(MSE, p1, batches, ADAM, num_steps=20, state=h1.state._replace(step=jnp.int32(0)),
                       **RESUMABLE)
    assert not np.array_equal(restarted.loss, h2.loss) and not np.array_equal(from_zero.loss, h2.loss)


def lanczos_warm_cold_svd(p, g, v):
    """||dL/dW_hh||_2 by 2 Lanczos steps from the last step's Ritz vector (the state), from a fixed vector, by SVD."""
    G = g.cell.W_hh
    warm, v_next = lanczos_spectral_norm(G, v, steps=2)
    cold, _ = lanczos_spectral_norm(G, jnp.full(3, 3 ** -0.5), steps=2)
    return (warm, cold, spectral_norm(G)), v_next


def test_fit_records_a_warm_started_lanczos_norm_across_a_continued_run():
    v0 = jax.device_put(np.full(3, 3 ** -0.5, np.float32))
    p1, h1 = fit(MSE, MODEL, (FIT_XS, FIT_YS), ADAM, num_steps=6, record=lanczos_warm_cold_svd, record_state=v0)
    _, h2 = fit(MSE, p1, (FIT_XS, FIT_YS), ADAM, num_steps=6, record=lanczos_warm_cold_svd, state=h1.state)
    _, whole = fit(MSE, MODEL, (FIT_XS, FIT_YS), ADAM, num_steps=12, record=lanczos_warm_cold_svd, record_state=v0)
    warm, cold, svd = (np.concatenate([a, b]) for a, b in zip(h1.extra, h2.extra, strict=True))
    np.testing.assert_array_equal(warm, whole.extra[0])  # the Ritz vector crossed the two calls
    assert np.all(warm <= svd * (1 + 1e-6)) and np.all(cold <= svd * (1 + 1e-6))  # Lanczos: lower bounds
    assert warm[6] != cold[6]  # the second call started from the first call's vector, not from v0
    assert np.median(1 - warm / svd) < 2e-3


def test_fit_compiles_once_for_new_values_and_a_continued_state():
    fit(MSE, MODEL, (FIT_XS, FIT_YS), ADAM, num_steps=4)
    _, h = fit(MSE, MODEL, (FIT_XS, FIT_YS), ADAM, num_steps=4, state=FitState(init_adam(MODEL), jnp.int32(0),
                                                                                 jnp.asarray(False)))
    before = _fit._cache_size()
    other = model_params(7)  # new parameter values
    p, h2 = fit(MSE, other, jax.device_put((XS_NP + 1.0, YS_NP * 2.0)), ADAM, num_steps=4)  # new data, same shapes
    fit(MSE, p, (FIT_XS, FIT_YS), ADAM, num_steps=4, state=h2.state)  # continued at step 4
    fit(MSE, MODEL, (FIT_XS, FIT_YS), ADAM, num_steps=4, state=h.state._replace(step=jnp.int32(123)))
    assert _fit._cache_size() == before
    fit(MSE, MODEL, (FIT_XS, FIT_YS), optax.adam(optax.exponential_decay(0.05, 7, 0.5)), num_steps=4)
    assert _fit._cache_size() == before + 1  # a fresh optax object is another static argument: compiled again


def test_a_halted_run_stays_halted_when_continued():
    p, h = fit(MSE, MODEL, (FIT_XS, FIT_YS), ADAM, num_steps=4)
    q, h2 = fit(MSE, p, (FIT_XS, FIT_YS), ADAM, num_steps=4, state=h.state._replace(halted=jnp.asarray(True)))
    assert_trees_equal(q, p)
    assert_trees_equal(h2.state.opt_state, h.state.opt_state)
    assert not np.asarray(h2.finite).any() and bool(h2.state.halted) and int(h2.state.step) == 8


def test_fit_callback_gets_the_steps_done_and_their_losses():
    calls = []
    progress = lambda step, loss: calls.append((int(step), float(loss)))
    _, h = fit(MSE, MODEL, (FIT_XS, FIT_YS), ADAM, num_steps=7, callback=progress, callback_every=3)
    loss = np.asarray(h.loss)
    assert calls == [(3, float(loss[2])), (6, float(loss[5])), (7, float(loss[6]))]
    calls.clear()
    _, h2 = fit(MSE, MODEL, (FIT_XS, FIT_YS), ADAM, num_steps=7, callback=progress, callback_every=3, state=h.state)
    loss = np.asarray(h2.loss)
    assert calls == [(9, float(loss[1])), (12, float(loss[4])), (14, float(loss[6]))]  # absolute steps


# fit's own errors: each raised before any work, naming the problem and both sides in full

ONE_BATCH_NP = (XS_NP[0], YS_NP[0])  # (xs (B, T, D), ys (B, O)) without the leading N axis
ONE_BATCH = jax.device_put(ONE_BATCH_NP)


def labels_out_of_range():  # int32 (N, B, T) class labels, 0 but for a 4 at (1, 0, 2) and a 6 at (2, 1, 1)
    ys = np.zeros((3, 2, 5), np.int32)
    ys[1, 0, 2], ys[2, 1, 1] = 4, 6
    return jax.device_put(ys)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: fit(MSE, MODEL, jax.device_put((XS_NP[:0], YS_NP[:0])), ADAM, num_steps=2),
     r"batches is empty: its leading axis N .* is 0, in \(float32\[0, 2, 5, 2\], float32\[0, 2, 1\]\)"),
    (lambda: fit(MSE, MODEL, (jax.device_put(XS_NP[:, :, :0]), FIT_YS), ADAM, num_steps=2),
     r"batches\[0\] has shape \(3, 2, 0, 2\): an axis of length 0 \(e\.g\. T = 0 time steps\)"),
    (lambda: fit(MSE, MODEL, lambda s: (jnp.zeros((2, 0, 2)), jnp.zeros((2, 1))), ADAM, num_steps=2),
     r"batches\(s\)\[0\] has shape \(2, 0, 2\): an axis of length 0"),
    (lambda: fit(MSE, MODEL, (FIT_XS, jax.device_put(YS_NP[:2])), ADAM, num_steps=2),
     r"sharing a leading axis N .* got \(float32\[3, 2, 5, 2\], float32\[2, 2, 1\]\)"),
    (lambda: fit(XENT, MODEL, (FIT_XS, labels_out_of_range()), ADAM, num_steps=2),
     r"class label 4 at index \(1, 0, 2\), outside 0..0 \(the output size O = 1\); its labels range from 0 to 6"),
    (lambda: fit(MSE, MODEL, (jax.device_put(XS_NP[..., :1]), FIT_YS), ADAM, num_steps=2),
     r"batch \(float32\[2, 5, 1\], float32\[2, 1\]\) with params ModelParams\(cell=VanillaParams\(W_xh=float32\[2, 3\]"
     r".*dot_general requires contracting dimensions to have the same shape, got \((1|2),\) and \((2|1),\)"),
    (lambda: fit(MSE, MODEL, ONE_BATCH, ADAM, num_steps=2),
     r"batches \(float32\[2, 5, 2\], float32\[2, 1\]\) is ambiguous: .* its item 0 \(float32\[5, 2\], float32\[1\]\)"
     r".* jax\.tree\.map\(lambda a: a\[None\], batches\) .* jax\.tree\.map\(lambda a: a\[:, None\], batches\)"),
    (lambda: fit(MSE, MODEL, (FIT_XS, FIT_YS), optax.sgd(0.1), num_steps=2,
                 state=FitState(init_adam(MODEL), jnp.int32(4), jnp.asarray(False))),
     r"state.opt_state does not fit .* optimizer.init\(params\) gives \(EmptyState\(\), EmptyState\(\)\), "
     r"state.opt_state is \(ScaleByAdamState\(count=int32\[\], mu=ModelParams"),
    (lambda: fit(MSE, MODEL, (FIT_XS, FIT_YS), ADAM, num_steps=2, record=running_norm, record_state=ZERO,
                 state=FitState(init_adam(MODEL), jnp.int32(4), jnp.asarray(False), ZERO)),
     r"drop record_state= when passing state="),
    (lambda: fit(MSE, MODEL, (FIT_XS, FIT_YS), ADAM, num_steps=2, monitor=readout_bias, monitor_every=5,
                 state=FitState(init_adam(MODEL), jnp.int32(4), jnp.asarray(False))),
     r"continues at a multiple of monitor_every \(5\) .* state.step is 4"),
    (lambda: fit(MSE, MODEL, (FIT_XS, FIT_YS), ADAM, num_steps=2, record=running_norm, record_state=jnp.int32(0)),
     r"next_state like state int32\[\], got next_state float32\[\]"),
    (lambda: fit(MSE, MODEL, (FIT_XS, FIT_YS), ADAM, num_steps=2, monitor=lambda p: p.cell.W_hh @ jnp.ones(4)),
     r"monitor\(params\) fails on params ModelParams\(.*\): .*dot_general requires contracting dimensions"),
    (lambda: fit(MSE, MODEL, (FIT_XS, FIT_YS), ADAM, num_steps=2, callback_every=0),
     r"callback_every must be a positive integer, got 0"),
    (lambda: fit(MSE, MODEL, (FIT_XS, FIT_YS), ADAM, num_steps=2, state=(1, 2, 3)),
     r"state must be the FitState of an earlier run \(fit's history.state\), got tuple"),
], ids=["N=0", "T=0", "T=0 function", "leading N", "labels", "width", "no N axis", "optimizer state",
        "record_state twice", "monitor step", "record state", "monitor", "callback_every", "state type"])
def test_fit_refuses_bad_input_up_front(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_fit_names_a_dtype_mismatch_in_full(x64):
    model32 = jax.tree.map(lambda a: a.astype(jnp.float32), MODEL)
    with pytest.raises(ValueError) as info:  # float64 data into a float32 cell: the scan's carry types differ
        fit(MSE, model32, (jax.device_put(XS_NP.astype(np.float64)), FIT_YS), ADAM, num_steps=2)
    message = str(info.value)
    assert "batch (float64[2, 5, 2], float32[2, 1]) with params ModelParams(cell=VanillaParams(W_xh=float32" in message
    assert message.endswith("Revise the function so that all output types match the corresponding input types.")
    # both sides of the carry (the vanilla cell's whole batch, feature-major (H, B)), not cut at "differ:"
    assert "float32[3,2]" in message and "float64[3,2]" in message


def test_the_two_ways_out_of_an_ambiguous_batch_are_accepted():
    # the batches built in NumPy (no eager program per shape), then put on the device
    one_batch = jax.device_put(jax.tree.map(lambda a: a[None], ONE_BATCH_NP))  # N = 1: the whole batch at every step
    per_sequence = jax.device_put(jax.tree.map(lambda a: a[:, None], ONE_BATCH_NP))  # N = B items of one sequence each
    one_sequence = jax.device_put((XS_NP[:1, 0], YS_NP[:1, 0]))  # (xs[None], ys[None]) of one sequence: N = 1 both ways
    for batches in (one_batch, per_sequence, (FIT_XS, FIT_YS), one_sequence):
        check_leading_axis(MSE, MODEL, batches)  # no error
    p, h = fit(MSE, MODEL, one_batch, ADAM, num_steps=2)
    np.testing.assert_allclose(np.asarray(h.loss)[0], float(MSE(MODEL, ONE_BATCH)), rtol=1e-6)  # the batch mean
    rank_polymorphic = lambda p, x: jnp.mean((x @ jnp.ones(2)) ** 2) + 0.0 * jnp.sum(p.readout.b_o)
    check_leading_axis(rank_polymorphic, MODEL, FIT_XS)  # every rank is a batch to it: N is taken as given
