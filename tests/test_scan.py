"""The cell protocol end to end: each built-in cell against its explicit equations and the results of
rnnjax 0.1 (stored arrays), unroll/predict/losses and their jax.grad against finite differences,
fit against a hand loop of optax steps, train with an optax transformation, and the analysis
tools on a pytree carry (the LSTM's (h, c)) against an independent NumPy QR."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import numpy_params, zeros
from jax.flatten_util import ravel_pytree

import rnnjax
from rnnjax import cells
from rnnjax.data import tasks
from rnnjax.train import run_steps

GOLDEN = np.load(__file__.replace("test_scan.py", "data/golden_gated_v0.npz"))  # rnnjax 0.1's gated.py outputs


def sig(v):
    return 1.0 / (1.0 + math.exp(-v))


def f32(values):  # float32 test data on the device, without the eager program jnp.array compiles per shape
    return jax.device_put(np.asarray(values, np.float32))


# ---------------------------------------------------------------- single steps, by hand (H = 1, D = 1)

# one scalar weight per gate: (input weight, recurrent weight, bias)
LSTM_W = {"i": (0.5, -0.4, 0.1), "f": (-0.3, 0.8, 1.0), "g": (0.9, 0.2, -0.2), "o": (0.7, -0.6, 0.05)}


def test_lstm_step_and_forward_equal_hand_computation():
    x, h, c = 0.8, -0.5, 0.3
    pre = {k: wx * x + wh * h + b for k, (wx, wh, b) in LSTM_W.items()}
    i, f, o = sig(pre["i"]), sig(pre["f"]), sig(pre["o"])
    c_new = f * c + i * math.tanh(pre["g"])  # c_t = f_t c_{t-1} + i_t g_t
    h_new = o * math.tanh(c_new)  # h_t = o_t tanh(c_t)
    gates = "ifgo"  # PyTorch's order, and ours
    params = rnnjax.LSTMParams(
        W_xh=f32([[LSTM_W[k][0] for k in gates]]), W_hh=f32([[LSTM_W[k][1] for k in gates]]),
        b_h=f32([LSTM_W[k][2] for k in gates]))
    cell = cells.lstm()
    new = cell.step(params, rnnjax.LSTMCarry(f32([h]), f32([c])), f32([x]))
    h_1 = float(np.asarray(new.h)[0])  # read in NumPy: no eager program per index
    assert h_1 == pytest.approx(h_new, rel=1e-6, abs=1e-7)
    assert float(np.asarray(new.c)[0]) == pytest.approx(c_new, rel=1e-6)
    assert float(np.asarray(cell.hidden(new))[0]) == h_1
    # a 2-step sequence from (0, 0): the second step by hand from the first
    h1c1 = cell.step(params, cell.initial_carry(params), f32([x]))
    pre2 = {k: wx * (-1.0) + wh * float(np.asarray(h1c1.h)[0]) + b for k, (wx, wh, b) in LSTM_W.items()}
    c2 = sig(pre2["f"]) * float(np.asarray(h1c1.c)[0]) + sig(pre2["i"]) * math.tanh(pre2["g"])
    h2 = sig(pre2["o"]) * math.tanh(c2)
    model = rnnjax.ModelParams(params, rnnjax.Readout(f32([[2.0]]), f32([-1.0])))
    hs, _ = rnnjax.unroll(cell, params, f32([[x], [-1.0]]))
    outs = rnnjax.predict(cell, model, f32([[x], [-1.0]]))
    assert float(np.asarray(hs)[1, 0]) == pytest.approx(h2, rel=1e-6)
    assert float(np.asarray(outs)[1, 0]) == pytest.approx(2.0 * h2 - 1.0, rel=1e-6)  # y_t = h_t W_ho + b_o
    tuple_carry = cell.step(params, (f32([h]), f32([c])), f32([x]))  # a plain tuple works too
    assert type(tuple_carry) is tuple and float(np.asarray(tuple_carry[0])[0]) == h_1


# (input weight, input bias, recurrent weight, recurrent bias) per gate
GRU_W = {"r": (0.6, 0.1, -0.7, 0.2), "z": (-0.4, -0.3, 0.5, 0.1), "n": (1.1, 0.05, 0.9, -0.25)}


def test_gru_step_equals_hand_computation():
    x, h = -0.7, 0.4
    (rx, rbx, rh, rbh), (zx, zbx, zh, zbh), (nx, nbx, nh, nbh) = GRU_W["r"], GRU_W["z"], GRU_W["n"]
    r = sig(rx * x + rbx + rh * h + rbh)
    z = sig(zx * x + zbx + zh * h + zbh)
    n = math.tanh(nx * x + nbx + r * (nh * h + nbh))  # b_hn inside the reset product
    h_new = (1 - z) * n + z * h  # h_t = (1 - z_t) n_t + z_t h_{t-1}
    gates = "rzn"
    params = rnnjax.GRUParams(
        W_xh=f32([[GRU_W[k][0] for k in gates]]), W_hh=f32([[GRU_W[k][2] for k in gates]]),
        b_xh=f32([GRU_W[k][1] for k in gates]), b_hh=f32([GRU_W[k][3] for k in gates]))
    h_t = cells.gru().step(params, f32([h]), f32([x]))
    assert float(np.asarray(h_t)[0]) == pytest.approx(h_new, rel=1e-6, abs=1e-7)
    hs, _ = rnnjax.unroll(cells.gru(), params, f32([[x]]), f32([h]))  # the cell's whole-sequence path
    assert float(np.asarray(hs)[0, 0]) == pytest.approx(h_new, rel=1e-6, abs=1e-7)


def test_vanilla_cell_is_the_report_cell():
    p = rnnjax.init_rnn(jax.random.PRNGKey(0), 3, 4, 2, rho=1.1)
    xs = f32(np.random.default_rng(1).normal(size=(6, 3)))
    cell = cells.vanilla("relu", rho=1.1)
    hs, h_T = rnnjax.unroll(cell, p, xs)  # the cell reads W_xh, W_hh, b_h of the whole model
    ref, outs = rnnjax.rnn_forward(p, xs, activation="relu")
    np.testing.assert_allclose(hs, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(h_T, np.asarray(hs)[-1])
    model = rnnjax.init_model(cell, jax.random.PRNGKey(0), 3, 4, 2)  # same key: init_rnn's draws exactly
    for a, b in zip((*model.cell, *model.readout), p, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(rnnjax.predict(cell, model, xs), outs, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------- the built-ins against rnnjax 0.1's results

@pytest.mark.parametrize("dtype, tol", [("f32", 1e-6), ("f64", 1e-12)])
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_builtin_cells_reproduce_rnnjax_0_1(x64, name, dtype, tol):
    dt = {"f32": jnp.float32, "f64": jnp.float64}[dtype]
    cell = cells.get_cell(name, dtype=dt)
    model = jax.jit(rnnjax.init_model, static_argnums=(0, 2, 3, 4))(cell, jax.random.PRNGKey(3), 2, 3, 2)
    fields = [*model.cell._fields, *model.readout._fields]
    for field, a in zip(fields, (*model.cell, *model.readout), strict=True):
        np.testing.assert_allclose(a, GOLDEN[f"{name}_{dtype}_{field}"], rtol=tol)  # same draws from the same key
    xs = jax.device_put(GOLDEN[f"xs_{dtype}"])
    hs, _ = rnnjax.unroll(cell, model.cell, xs)
    np.testing.assert_allclose(hs, GOLDEN[f"{name}_{dtype}_hs"], rtol=tol, atol=tol)
    ys = jax.jit(rnnjax.predict, static_argnums=0)(cell, model, xs)
    np.testing.assert_allclose(ys, GOLDEN[f"{name}_{dtype}_ys"], rtol=tol, atol=tol)
    stepwise = cell._replace(unroll=None)  # the plain scan of cell.step gives the whole-sequence path's states
    np.testing.assert_allclose(rnnjax.unroll(stepwise, model.cell, xs)[0], hs, rtol=tol, atol=tol)


def test_lstm_init_forget_bias_orthogonal_blocks_and_registry_errors():
    p = cells.lstm().init(jax.random.PRNGKey(0), 2, 3)
    assert p.W_xh.shape == (2, 12) and p.W_hh.shape == (3, 12)
    np.testing.assert_array_equal(p.b_h, np.r_[np.zeros(3), np.ones(3), np.zeros(6)])  # b_f = 1, gates [i|f|g|o]
    assert np.abs(np.asarray(cells.lstm(forget_bias=0.0).init(jax.random.PRNGKey(0), 2, 3).b_h)).max() == 0.0
    W_hh = np.asarray(p.W_hh)
    for k in range(4):  # each gate's recurrent block is orthogonal by default
        Q = W_hh[:, 3 * k:3 * (k + 1)]
        np.testing.assert_allclose(Q.T @ Q, np.eye(3), atol=1e-5)
    g = jax.eval_shape(lambda k: rnnjax.init_model(cells.gru(), k, 2, 5, 4), jax.random.PRNGKey(0))
    assert g.cell.W_xh.shape == (2, 15) and g.cell.W_hh.shape == (5, 15) and g.cell.b_hh.shape == (15,)
    assert g.readout.W_ho.shape == (5, 4)
    with pytest.raises(ValueError, match=r"unknown cell 'transformer'"):
        cells.get_cell("transformer")
    with pytest.raises(ValueError, match=r"cell 'lstm' takes no option 'activation'"):
        cells.get_cell("lstm", activation="relu")
    with pytest.raises(ValueError, match="recurrent_init"):
        cells.lstm(recurrent_init="random")


def test_bad_inputs_name_the_problem():
    cell = cells.lstm()
    model = numpy_params(lambda k, *a: rnnjax.init_model(cell, k, *a), 2, 3, 1)  # values play no part here
    with pytest.raises(ValueError, match=r"xs must have shape \(T, D\)"):
        rnnjax.unroll(cell, model.cell, zeros(2, 4, 2))
    with pytest.raises(ValueError, match=r"cell.step cannot take this carry and input"):
        rnnjax.unroll(cell, model.cell, zeros(4, 3))
    with pytest.raises(ValueError, match=r"cell.step cannot take"):
        rnnjax.unroll(cell, model.cell, zeros(4, 2), (zeros(4), zeros(4)))
    with pytest.raises(ValueError, match=r"must return a carry like the one it takes: took int32\[3\], returned float"):
        rnnjax.unroll(cells.gru(), numpy_params(cells.gru().init, 2, 3), zeros(4, 2), zeros(3, dtype=np.int32))
    with pytest.raises(ValueError, match="targets"):
        rnnjax.cell_loss_and_grad(cell, model, zeros(4, 2), zeros(2), loss="mse_last")


# ------------------------------------------------------------------- gradients vs finite differences

def _central_differences(f, flat, eps=1e-6):
    """(f(v + eps e_i) - f(v - eps e_i)) / (2 eps) for every i, the 2n points evaluated in one batched call."""
    flat = np.asarray(flat)
    E = eps * np.eye(flat.size, dtype=flat.dtype)
    values = np.asarray(jax.vmap(f)(jax.device_put(np.concatenate([flat + E, flat - E]))))
    return (values[:flat.size] - values[flat.size:]) / (2 * eps)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_cell_loss_grad_matches_central_differences_float64(x64, name):
    rng = np.random.default_rng(3)
    cell = cells.get_cell(name, dtype=jnp.float64)
    # every parameter drawn (biases too, so e.g. the GRU's b_hn inside r_t * (.) is exercised)
    model = numpy_params(lambda k, *a: rnnjax.init_model(cell, k, *a), 2, 3, 2, draw=lambda n: 0.5 * rng.normal(size=n))
    xs = rng.normal(size=(4, 5, 2))  # a batch of 4
    ys = rng.normal(size=(4, 2))
    flat, unravel = ravel_pytree(model)
    loss_fn = rnnjax.make_loss(cell, "mse_last")
    fd = _central_differences(jax.jit(lambda v: loss_fn(unravel(v), (xs, ys))), flat)
    value, g = rnnjax.cell_loss_and_grad(cell, model, xs, ys, loss="mse_last")
    g = np.concatenate([np.ravel(a) for a in jax.tree.leaves(g)])  # ravel_pytree's order
    assert np.linalg.norm(g - fd) / np.linalg.norm(fd) < 1e-8
    one = [rnnjax.sequence_loss(cell, model, xs[b], ys[b], loss="mse_last") for b in range(4)]
    assert float(value) == pytest.approx(float(np.mean(one)), rel=1e-12)  # the batch mean


def test_vanilla_cell_grad_equals_the_hand_bptt(x64):
    rng = np.random.default_rng(0)
    p = numpy_params(lambda k, *a: rnnjax.init_rnn(k, *a, dtype=jnp.float64), 2, 4, 3,
                  draw=lambda n: 0.7 * rng.normal(size=n))
    xs, ys = jax.device_put((rng.normal(size=(3, 6, 2)), rng.integers(0, 3, size=(3, 6))))
    v_ref, g_ref = rnnjax.loss_and_grad(p, xs, ys, loss="xent", activation="relu", method="bptt")
    model = rnnjax.ModelParams(cells.VanillaParams(p.W_xh, p.W_hh, p.b_h), rnnjax.Readout(p.W_ho, p.b_o))
    v, g = rnnjax.cell_loss_and_grad(cells.vanilla("relu"), model, xs, ys, loss="xent")
    assert float(v) == pytest.approx(float(v_ref), rel=1e-12)
    for a, b in zip((*g.cell, *g.readout), g_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------- training

def _data(seed, N=3, B=5, T=6, D=2):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, B, T, D)).astype(np.float32), rng.normal(size=(N, B, 1)).astype(np.float32)


def _model(cell, H, seed=0):
    """``init_model(cell, key, 2, H, 1)``'s parameters as test data: NumPy normals of std 0.5 (no eager init)."""
    rng = np.random.default_rng(seed)
    return numpy_params(lambda k: rnnjax.init_model(cell, k, 2, H, 1), draw=lambda n: 0.5 * rng.normal(size=n))


def test_fit_with_an_optax_chain_equals_a_hand_loop_of_optax_steps():
    cell = cells.gru()
    model = _model(cell, 4)
    xs, ys = _data(1)
    opt = optax.chain(optax.clip_by_global_norm(0.3), optax.adamw(optax.linear_schedule(0.05, 0.01, 7)))
    loss_fn = rnnjax.make_loss(cell, "mse_last")
    params, hist = rnnjax.fit(loss_fn, model, (xs, ys), opt, num_steps=7)
    @jax.jit
    def reference_step(p, state, x, y):  # optax's documented update loop, one Python step at a time
        value, g = jax.value_and_grad(loss_fn)(p, (x, y))
        updates, state = opt.update(g, state, p)
        return optax.apply_updates(p, updates), state, value, optax.tree.norm(g)

    p, state = model, jax.jit(opt.init)(model)  # one program, not one per leaf shape
    loss, grad_norm = np.asarray(hist.loss), np.asarray(hist.grad_norm)
    for s in range(7):
        p, state, value, gnorm = reference_step(p, state, xs[s % 3], ys[s % 3])
        np.testing.assert_allclose(loss[s], value, rtol=1e-5)
        np.testing.assert_allclose(grad_norm[s], gnorm, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(p), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.asarray(hist.finite).all() and loss[-1] < loss[0]


def test_fit_halts_on_the_first_nonfinite_step_and_records_extras():
    cell = cells.lstm()
    model = _model(cell, 3)
    xs, ys = _data(1, N=2, B=3, T=5)
    ys[1, 0, 0] = np.nan  # step 1 meets a NaN target
    loss_fn = rnnjax.make_loss(cell, "mse_last")
    record = lambda p, g: jnp.linalg.norm(g.cell.W_hh)
    p_bad, hist = rnnjax.fit(loss_fn, model, (xs, ys), optax.sgd(0.05), num_steps=3, record=record)
    np.testing.assert_array_equal(hist.finite, [True, False, False])
    assert int(rnnjax.first_nonfinite_step(hist)) == 1
    assert "step 1 of 3" in rnnjax.describe_nonfinite(hist)
    _, g0 = jax.jit(jax.value_and_grad(loss_fn))(model, (xs[0], ys[0]))
    np.testing.assert_allclose(hist.extra[0], np.linalg.norm(np.asarray(g0.cell.W_hh)), rtol=1e-5)
    for a, p0, g in zip(jax.tree.leaves(p_bad), jax.tree.leaves(model), jax.tree.leaves(g0), strict=True):
        # frozen after the one finite step
        np.testing.assert_allclose(a, np.asarray(p0) - 0.05 * np.asarray(g), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="optax.GradientTransformation"):
        rnnjax.fit(loss_fn, model, (xs, ys), "adam", num_steps=3)
    with pytest.raises(ValueError, match="leading axis N"):
        rnnjax.fit(loss_fn, model, (xs, ys[:1]), optax.sgd(0.1), num_steps=3)
    with pytest.raises(ValueError, match=r"loss_fn\(params, batch\) fails on one item of batches"):
        rnnjax.fit(loss_fn, model, (xs[..., :1], ys), optax.sgd(0.1), num_steps=3)  # D = 1, the cell wants 2
    with pytest.raises(ValueError, match="must return a float scalar"):
        rnnjax.fit(lambda p, b: jnp.zeros(2), model, (xs, ys), optax.sgd(0.1), num_steps=3)


def test_fit_on_fresh_data_per_step_and_a_run_continued_from_its_state():
    cell = cells.gru()
    model = _model(cell, 3)
    key, opt = jax.random.PRNGKey(5), optax.adam(0.05)
    data = lambda s: tasks.adding_problem(jax.random.fold_in(key, s), 4, 6)  # step s's own fresh batch
    loss_fn, b_o = rnnjax.make_loss(cell, "mse_last"), lambda p: p.readout.b_o
    p_fn, h_fn = rnnjax.fit(loss_fn, model, data, opt, num_steps=6, monitor=b_o, monitor_every=1)
    batches = [data(jnp.int32(s)) for s in range(6)]
    stacked = jax.device_put(jax.tree.map(lambda *a: np.stack(a), *batches))  # item s = batch s, stacked in NumPy
    p_ref, h_ref = rnnjax.fit(loss_fn, model, stacked, opt, num_steps=6)
    np.testing.assert_allclose(h_fn.loss, h_ref.loss, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(p_fn), jax.tree.leaves(p_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert np.asarray(h_fn.loss)[0] != np.asarray(h_fn.loss)[1]  # not one batch repeated

    def vg(p, batch, carry):
        return (*jax.value_and_grad(loss_fn)(p, batch), carry)

    @jax.jit
    def chunk(p, o, ok, start):  # 3 steps from `start`, continuing (p, o, ok)
        return run_steps(vg, p, data, opt, num_steps=3, start=start, opt_state=o, alive=ok, return_state=True,
                         monitor=b_o, monitor_every=2)

    p, o, ok, h1 = chunk(model, jax.jit(opt.init)(model), jnp.asarray(True), jnp.int32(0))
    p, o, ok, h2 = chunk(p, o, ok, jnp.int32(3))  # steps 3, 4, 5: one Adam run with the first chunk
    np.testing.assert_allclose(np.concatenate([h1.loss, h2.loss]), h_fn.loss, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(p_fn), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.concatenate([h1.monitor, h2.monitor]), np.asarray(h_fn.monitor)[[0, 2, 3, 5]],
                               rtol=1e-6, atol=1e-7)  # each chunk monitors its own steps 0 and 2
    halted = chunk(p, o, jnp.asarray(False), jnp.int32(6))  # a halted run stays halted: nothing changes
    assert bool(ok) and not bool(halted[2]) and not np.asarray(halted[3].finite).any()
    for a, b in zip(jax.tree.leaves(halted[0]), jax.tree.leaves(p), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"batches\(s\) fails on a step number"):
        rnnjax.fit(loss_fn, model, lambda s: tasks.adding_problem(key, 4, s), opt, num_steps=2)  # T traced


def test_train_takes_an_optax_transformation():
    rng = np.random.default_rng(0)
    p = numpy_params(rnnjax.init_rnn, 2, 4, 1, draw=lambda n: 0.5 * rng.normal(size=n))
    xs, ys = jax.device_put(_data(1))
    kw = dict(loss="mse_last", num_steps=6)
    p_name, h_name = rnnjax.train(p, xs, ys, learning_rate=0.05, optimizer="adam", clip_norm=0.5, **kw)
    opt = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(0.05))
    p_opt, h_opt = rnnjax.train(p, xs, ys, optimizer=opt, clip_norm=0.5, **kw)
    for a, b in zip((*p_name, *h_name), (*p_opt, *h_opt), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="learning_rate is required"):
        rnnjax.train(p, xs, ys, optimizer="sgd", **kw)


# ---------------------------------------------------------------- analysis on a pytree carry (h, c)

def _np_lstm_step(W_xh, W_hh, b, s, x):
    """An LSTM step on the flat state s = (h, c), written in NumPy (independent of rnnjax)."""
    H = W_hh.shape[0]
    h, c = s[:H], s[H:]
    z = x @ W_xh + h @ W_hh + b
    i, f, g, o = (z[k * H:(k + 1) * H] for k in range(4))
    c = 1 / (1 + np.exp(-f)) * c + 1 / (1 + np.exp(-i)) * np.tanh(g)
    return np.concatenate([1 / (1 + np.exp(-o)) * np.tanh(c), c])


def test_lstm_lyapunov_spectrum_over_h_and_c_equals_an_independent_numpy_qr(x64):
    cell = cells.lstm(dtype=jnp.float64, forget_bias=2.0)
    p = jax.jit(cell.init, static_argnums=(1, 2))(jax.random.PRNGKey(0), 2, 3)  # one program, not ~25 eager ones
    xs = jax.device_put(0.5 * np.random.default_rng(1).normal(size=(60, 2)))
    step = lambda c, x: cell.step(p, c, x)
    c0 = cell.initial_carry(p)
    lyap = rnnjax.lyapunov_of(step, c0, xs)  # over the 6 numbers of (h, c)
    Js = rnnjax.jacobians_of(step, c0, xs)
    assert lyap.shape == (6,) and Js.shape == (60, 6, 6)
    W_xh, W_hh, b = (np.asarray(a) for a in p)
    s, Q, total, eps = np.zeros(6), np.eye(6), np.zeros(6), 1e-6
    for x in np.asarray(xs):  # Benettin's QR method with central-difference Jacobians
        J = np.stack([(_np_lstm_step(W_xh, W_hh, b, s + eps * e, x) - _np_lstm_step(W_xh, W_hh, b, s - eps * e, x))
                      / (2 * eps) for e in np.eye(6)], axis=1)
        Q, R = np.linalg.qr(J @ Q)
        total += np.log(np.abs(np.diag(R)))
        s = _np_lstm_step(W_xh, W_hh, b, s, x)
    np.testing.assert_allclose(lyap, np.sort(total / 60)[::-1], rtol=1e-6, atol=1e-8)
    # lag profile over the whole carry equals the norms of the per-part gradients, g_T a carry-shaped pytree
    g_T = rnnjax.LSTMCarry(jnp.ones(3, jnp.float64), jnp.zeros(3, jnp.float64))
    G = rnnjax.state_grads_of(step, c0, xs, g_T)  # (h: (T, 3), c: (T, 3)), time order
    norms = np.sqrt(np.sum(np.asarray(G.h) ** 2, 1) + np.sum(np.asarray(G.c) ** 2, 1))[::-1]
    np.testing.assert_allclose(rnnjax.lag_profile_of(step, c0, xs, g_T), norms, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(G.h)[-1], g_T.h)  # the last row is g_T itself
