"""LSTM/GRU cells against hand-computed steps, PyTorch-layout import, jax.grad vs finite differences,
the cell-generic training loop against rnnjax.train, and the flat-state hooks of rnnjax.analysis."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import rnnjax
from rnnjax import analysis
from rnnjax.gated import (
    GRUParams,
    LSTMCarry,
    LSTMParams,
    cell_forward,
    cell_loss,
    cell_loss_and_grad,
    flat_readout_grad,
    flat_state,
    flat_state_grads,
    flat_step,
    gru_cell,
    gru_forward,
    gru_params_from_torch,
    init_cell,
    init_gru,
    init_lstm,
    lstm_cell,
    lstm_forward,
    lstm_params_from_torch,
    params_to_torch,
    train_cell,
)


def sig(v):
    return 1.0 / (1.0 + math.exp(-v))


# ---------------------------------------------------------------- single steps, by hand (H = 1, D = 1)

# one scalar weight per gate: (input weight, recurrent weight, bias)
LSTM_W = {"i": (0.5, -0.4, 0.1), "f": (-0.3, 0.8, 1.0), "g": (0.9, 0.2, -0.2), "o": (0.7, -0.6, 0.05)}


def test_lstm_step_equals_hand_computation():
    x, h, c = 0.8, -0.5, 0.3
    pre = {k: wx * x + wh * h + b for k, (wx, wh, b) in LSTM_W.items()}
    i, f, o = sig(pre["i"]), sig(pre["f"]), sig(pre["o"])
    g = math.tanh(pre["g"])
    c_new = f * c + i * g  # c_t = f_t c_{t-1} + i_t g_t
    h_new = o * math.tanh(c_new)  # h_t = o_t tanh(c_t)
    gates = "ifgo"  # PyTorch's order, and ours
    params = LSTMParams(
        W_xh=jnp.array([[LSTM_W[k][0] for k in gates]]),
        W_hh=jnp.array([[LSTM_W[k][1] for k in gates]]),
        b_h=jnp.array([LSTM_W[k][2] for k in gates]),
        W_ho=jnp.array([[2.0]]), b_o=jnp.array([-1.0]),
    )
    new = lstm_cell(params, LSTMCarry(jnp.array([h]), jnp.array([c])), jnp.array([x]))
    assert float(new.h[0]) == pytest.approx(h_new, rel=1e-6, abs=1e-7)
    assert float(new.c[0]) == pytest.approx(c_new, rel=1e-6)
    # and lstm_forward over a 2-step sequence from (h, c) = (0, 0): second step by hand from the first
    h1c1 = lstm_cell(params, LSTMCarry(jnp.zeros(1), jnp.zeros(1)), jnp.array([x]))
    pre2 = {k: wx * (-1.0) + wh * float(h1c1.h[0]) + b for k, (wx, wh, b) in LSTM_W.items()}
    c2 = sig(pre2["f"]) * float(h1c1.c[0]) + sig(pre2["i"]) * math.tanh(pre2["g"])
    h2 = sig(pre2["o"]) * math.tanh(c2)
    hs, outs = lstm_forward(params, jnp.array([[x], [-1.0]]))
    assert float(hs[1, 0]) == pytest.approx(h2, rel=1e-6)
    assert float(outs[1, 0]) == pytest.approx(2.0 * h2 - 1.0, rel=1e-6)  # y_t = h_t W_ho + b_o


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
    params = GRUParams(
        W_xh=jnp.array([[GRU_W[k][0] for k in gates]]), W_hh=jnp.array([[GRU_W[k][2] for k in gates]]),
        b_xh=jnp.array([GRU_W[k][1] for k in gates]), b_hh=jnp.array([GRU_W[k][3] for k in gates]),
        W_ho=jnp.array([[1.0]]), b_o=jnp.array([0.0]),
    )
    assert float(gru_cell(params, jnp.array([h]), jnp.array([x]))[0]) == pytest.approx(h_new, rel=1e-6, abs=1e-7)
    hs, outs = gru_forward(params, jnp.array([[x]]), jnp.array([h]))
    assert float(hs[0, 0]) == pytest.approx(h_new, rel=1e-6, abs=1e-7)
    np.testing.assert_allclose(outs, hs)


# ------------------------------------------------------------------------- PyTorch's layout (no torch)

def _np_sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def _torch_lstm_reference(sd, xs):
    """torch.nn.LSTM's documented equations, column form W x + b, written independently of rnnjax."""
    H = sd["weight_hh_l0"].shape[1]
    h, c, out = np.zeros(H), np.zeros(H), []
    for x in xs:
        gates = sd["weight_ih_l0"] @ x + sd["bias_ih_l0"] + sd["weight_hh_l0"] @ h + sd["bias_hh_l0"]
        i, f, g, o = (gates[k * H:(k + 1) * H] for k in range(4))
        c = _np_sig(f) * c + _np_sig(i) * np.tanh(g)
        h = _np_sig(o) * np.tanh(c)
        out.append(h)
    return np.array(out)


def _torch_gru_reference(sd, xs):
    """torch.nn.GRU's documented equations, column form."""
    H = sd["weight_hh_l0"].shape[1]
    h, out = np.zeros(H), []
    for x in xs:
        gi = sd["weight_ih_l0"] @ x + sd["bias_ih_l0"]
        gh = sd["weight_hh_l0"] @ h + sd["bias_hh_l0"]
        r = _np_sig(gi[:H] + gh[:H])
        z = _np_sig(gi[H:2 * H] + gh[H:2 * H])
        n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
        h = (1 - z) * n + z * h
        out.append(h)
    return np.array(out)


def _torch_state(rng, n_gates, D, H):
    return {"weight_ih_l0": rng.normal(size=(n_gates * H, D)), "weight_hh_l0": rng.normal(size=(n_gates * H, H)),
            "bias_ih_l0": rng.normal(size=n_gates * H), "bias_hh_l0": rng.normal(size=n_gates * H)}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_torch_layout_import_matches_torch_equations_and_round_trips(cell):
    rng = np.random.default_rng(0)
    D, H, O, T = 3, 4, 2, 5
    n_gates, importer, forward, ref = {
        "lstm": (4, lstm_params_from_torch, lstm_forward, _torch_lstm_reference),
        "gru": (3, gru_params_from_torch, gru_forward, _torch_gru_reference),
    }[cell]
    sd = _torch_state(rng, n_gates, D, H)
    xs = rng.normal(size=(T, D))
    params = importer(sd)
    hs, outs = forward(params, jnp.asarray(xs, jnp.float32))
    np.testing.assert_allclose(hs, ref(sd, xs), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs, hs)  # default read-out: identity, outputs == hs as torch returns
    lin = {"weight": rng.normal(size=(O, H)), "bias": rng.normal(size=O)}
    _, outs = forward(importer(sd, lin), jnp.asarray(xs, jnp.float32))
    np.testing.assert_allclose(outs, ref(sd, xs) @ lin["weight"].T + lin["bias"], rtol=1e-5, atol=1e-5)
    # round trips: params -> torch layout -> params, and the torch cell survives torch -> params -> torch
    sd2, lin2 = params_to_torch(importer(sd, lin))
    again = importer(sd2, lin2)
    for a, b in zip(importer(sd, lin), again, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(forward(again, jnp.asarray(xs, jnp.float32))[1], outs, rtol=1e-6)
    np.testing.assert_allclose(sd2["weight_ih_l0"], sd["weight_ih_l0"], rtol=1e-6)
    np.testing.assert_allclose(sd2["bias_ih_l0"] + sd2["bias_hh_l0"], sd["bias_ih_l0"] + sd["bias_hh_l0"], rtol=1e-6)


def test_torch_import_rejects_bad_layouts():
    sd = _torch_state(np.random.default_rng(1), 4, 2, 3)
    with pytest.raises(ValueError, match="bias_hh_l0"):
        lstm_params_from_torch({k: v for k, v in sd.items() if k != "bias_hh_l0"})
    with pytest.raises(ValueError, match="weight_hh_l0"):
        lstm_params_from_torch({**sd, "weight_hh_l0": np.zeros((12, 4))})
    with pytest.raises(ValueError, match="3H"):
        gru_params_from_torch(sd | {"weight_ih_l0": np.zeros((10, 2))})
    with pytest.raises(ValueError, match="one layer"):
        lstm_params_from_torch({**sd, "weight_ih_l1": sd["weight_ih_l0"]})
    with pytest.raises(ValueError, match="readout"):
        lstm_params_from_torch(sd, {"weight": np.zeros((1, 5))})


# ------------------------------------------------------------------------------- initialisation, API

def test_init_forget_bias_and_shapes():
    p = init_lstm(jax.random.PRNGKey(0), 2, 3, 1)
    assert p.W_xh.shape == (2, 12) and p.W_hh.shape == (3, 12) and p.W_ho.shape == (3, 1)
    np.testing.assert_array_equal(p.b_h, np.r_[np.zeros(3), np.ones(3), np.zeros(6)])  # b_f = 1, gates [i|f|g|o]
    assert float(jnp.abs(init_lstm(jax.random.PRNGKey(0), 2, 3, 1, forget_bias=0.0).b_h).max()) == 0.0
    for k in range(4):  # each gate's recurrent block is orthogonal by default
        Q = p.W_hh[:, 3 * k:3 * (k + 1)]
        np.testing.assert_allclose(Q.T @ Q, np.eye(3), atol=1e-5)
    g = jax.eval_shape(lambda k: init_gru(k, 2, 5, 4), jax.random.PRNGKey(0))
    assert g.W_xh.shape == (2, 15) and g.W_hh.shape == (5, 15) and g.b_hh.shape == (15,) and g.W_ho.shape == (5, 4)
    with pytest.raises(ValueError, match="cell"):
        init_cell("transformer", jax.random.PRNGKey(0), 2, 5, 3)
    with pytest.raises(ValueError, match="recurrent_init"):
        init_lstm(jax.random.PRNGKey(0), 2, 3, 1, recurrent_init="random")


def test_bad_inputs_name_the_parameter():
    p = init_lstm(jax.random.PRNGKey(0), 2, 3, 1)
    with pytest.raises(ValueError, match="xs"):
        lstm_forward(p, jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="carry0"):
        lstm_forward(p, jnp.zeros((4, 2)), jnp.zeros(3))
    with pytest.raises(ValueError, match="h0"):
        gru_forward(init_gru(jax.random.PRNGKey(0), 2, 3, 1), jnp.zeros((4, 2)), jnp.zeros(4))
    with pytest.raises(ValueError, match="targets"):
        cell_loss_and_grad(p, jnp.zeros((4, 2)), jnp.zeros(2), loss="mse_last")
    with pytest.raises(ValueError, match="params"):
        cell_forward({"W": 1}, jnp.zeros((4, 2)))


# ------------------------------------------------------------------- gradients vs finite differences

def _fd_check(params, xs, ys, loss, activation="tanh"):
    flat, unravel = ravel_pytree(params)
    f = jax.jit(lambda v: cell_loss(unravel(v), xs, ys, loss=loss, activation=activation))
    eps = 1e-6
    E = eps * jnp.eye(flat.size, dtype=flat.dtype)
    fd = (jax.vmap(f)(flat + E) - jax.vmap(f)(flat - E)) / (2 * eps)  # central differences
    _, g = cell_loss_and_grad(params, xs, ys, loss=loss, activation=activation)
    g = ravel_pytree(g)[0]
    assert float(jnp.linalg.norm(g - fd) / jnp.linalg.norm(fd)) < 1e-8


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_autograd_matches_central_differences_float64(x64, cell):
    k1, k2 = jax.random.split(jax.random.PRNGKey(3))
    params = init_cell(cell, k1, 2, 3, 2, dtype=jnp.float64)
    if cell == "gru":  # non-zero biases so b_hn's place inside r_t * (.) is exercised
        params = params._replace(b_hh=jnp.linspace(-0.5, 0.5, 9), b_xh=jnp.linspace(0.3, -0.3, 9))
    xs = jax.random.normal(k2, (5, 2), jnp.float64)
    _fd_check(params, xs, jnp.array([0.3, -0.2]), "mse_last")


def test_generic_grad_equals_hand_bptt_and_batch_mean(x64):
    p = rnnjax.init_rnn(jax.random.PRNGKey(0), 2, 4, 3, rho=1.2, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.PRNGKey(1), (3, 6, 2), jnp.float64)
    ys = jax.random.randint(jax.random.PRNGKey(2), (3, 6), 0, 3)
    v_ref, g_ref = rnnjax.loss_and_grad(p, xs, ys, loss="xent", activation="relu", method="bptt")
    v, g = cell_loss_and_grad(p, xs, ys, loss="xent", activation="relu")
    assert float(v) == pytest.approx(float(v_ref), rel=1e-12)
    for a, b in zip(g, g_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------- training

def test_train_cell_mirrors_rnnjax_train_on_the_vanilla_rnn():
    p = rnnjax.init_rnn(jax.random.PRNGKey(0), 2, 4, 1, rho=1.0)
    xs = jax.random.normal(jax.random.PRNGKey(1), (3, 5, 6, 2))
    ys = jax.random.normal(jax.random.PRNGKey(2), (3, 5, 1))
    kw = dict(loss="mse_last", num_steps=7, learning_rate=0.05, optimizer="adam", clip_norm=0.5)
    p_ref, h_ref = rnnjax.train(p, xs, ys, method="autograd", **kw)
    p_new, h_new = train_cell(p, xs, ys, **kw)
    for a, b in zip(h_new, h_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    for a, b in zip(p_new, p_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    assert bool(h_new.grad_norm_clipped.max() <= 0.5 + 1e-6)


def test_train_cell_lstm_halts_on_nonfinite_and_carries_state():
    lstm = init_lstm(jax.random.PRNGKey(0), 2, 3, 1)
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 5, 2))
    ys = jnp.zeros((2, 3, 1)).at[1, 0, 0].set(jnp.nan)  # step 1 meets a NaN target
    p_bad, hist = train_cell(lstm, xs, ys, loss="mse_last", num_steps=3, learning_rate=0.05)
    np.testing.assert_array_equal(hist.finite, [True, False, False])
    assert int(rnnjax.first_nonfinite_step(hist)) == 1
    # frozen after the one finite update: plain SGD moved every parameter by -lr * grad of step 0
    _, g0 = cell_loss_and_grad(lstm, xs[0], ys[0], loss="mse_last")
    for a, p0, g in zip(p_bad, lstm, g0, strict=True):
        np.testing.assert_allclose(a, p0 - 0.05 * g, rtol=1e-5, atol=1e-7)
    # carry_state: two 3-step segments of one sequence see the state of one 6-step pass
    seq = jax.random.normal(jax.random.PRNGKey(2), (6, 2))
    tiny = dict(loss="mse", num_steps=2, learning_rate=1e-30, carry_state=True)
    _, h_seg = train_cell(lstm, seq.reshape(2, 3, 2), jnp.zeros((2, 3, 1)), **tiny)
    _, outs = lstm_forward(lstm, seq)
    assert float(h_seg.loss[1]) == pytest.approx(0.5 * float(jnp.sum(outs[3:] ** 2)), rel=1e-5)


# --------------------------------------------------------------------------------- analysis hooks

def test_flat_step_feeds_the_analysis_tools_and_splits_the_lstm_cell_state():
    lstm = init_lstm(jax.random.PRNGKey(0), 2, 3, 1)
    xs = jax.random.normal(jax.random.PRNGKey(1), (7, 2))
    step, s0 = flat_step(lstm), flat_state(lstm)
    assert s0.shape == (6,)
    states = analysis.states_of(step, s0, xs)
    hs, _ = lstm_forward(lstm, xs)
    np.testing.assert_allclose(states[:, :3], hs, rtol=1e-6)
    y = jnp.array([0.7])
    G = flat_state_grads(lstm, xs, y)  # (T, 6): dL_T/ds_t
    g_T = flat_readout_grad(lstm, states[-1], y)
    np.testing.assert_allclose(G[-1], g_T, rtol=1e-5, atol=1e-7)
    assert float(jnp.abs(g_T[3:]).max()) == 0.0  # L_T sees c_T only through h_T
    # the analysis module's norm-only profile agrees with the vectors, lag k = row T-1-k
    prof = analysis.lag_profile_of(step, s0, xs, g_T)
    np.testing.assert_allclose(prof, jnp.linalg.norm(G, axis=1)[::-1], rtol=1e-4)
    # and the whole-sequence gradient w.r.t. the first state matches jax.grad of the loss in c0
    dc0 = jax.grad(lambda c0: cell_loss(lstm, xs, y, loss="mse_last", carry0=(jnp.zeros(3), c0)))(jnp.zeros(3))
    step0 = jax.vjp(lambda s: step(s, xs[0]), s0)[1](G[0])[0]
    np.testing.assert_allclose(step0[3:], dc0, rtol=1e-4, atol=1e-8)
    gru = init_gru(jax.random.PRNGKey(2), 2, 3, 1)
    Js = analysis.jacobians_of(flat_step(gru), flat_state(gru), xs)
    assert Js.shape == (7, 3, 3)
