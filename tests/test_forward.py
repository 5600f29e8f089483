"""The lax.scan forward against a plain Python loop written here, vmap over a batch against a loop,
and the input checks (wrong width, wrong rank, wrong h0, no time steps)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax import RNNParams, rnn_forward
from rnnjax.forward import rnn_states

PHI = {"tanh": np.tanh, "sigmoid": lambda a: 1 / (1 + np.exp(-a)), "relu": lambda a: np.maximum(a, 0),
       "linear": lambda a: a}


put = jax.device_put  # NumPy data onto the device: no program (jnp.asarray compiles one per shape)


def random_params(rng, D, H, O) -> RNNParams:
    """Float64 parameters from NumPy (no JAX PRNG: its compile time is what tests cannot afford)."""
    return RNNParams(W_xh=put(rng.normal(size=(D, H))), W_hh=put(rng.normal(size=(H, H)) / np.sqrt(H)),
                     b_h=put(0.1 * rng.normal(size=H)), W_ho=put(rng.normal(size=(H, O))),
                     b_o=put(0.1 * rng.normal(size=O)))


def python_loop_forward(p, xs, h0, activation):
    """The report's §1.2 equations, one step at a time, in NumPy."""
    W_xh, W_hh, b_h, W_ho, b_o = (np.asarray(a) for a in p)
    h = np.zeros(W_hh.shape[0]) if h0 is None else np.asarray(h0)
    hs, outs = [], []
    for x in np.asarray(xs):
        h = PHI[activation](x @ W_xh + h @ W_hh + b_h)  # a_t = x_t W_xh + h_{t-1} W_hh + b_h; h_t = phi(a_t)
        hs.append(h)
        outs.append(h @ W_ho + b_o)  # o_t = h_t W_ho + b_o
    return np.array(hs), np.array(outs)


_forward = jax.jit(rnn_forward, static_argnames=("activation",))


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "linear"])
def test_scan_forward_equals_python_loop(activation, x64):
    rng = np.random.default_rng(0)
    p = random_params(rng, 3, 4, 2)
    xs = put(rng.normal(size=(6, 3)))
    h0 = put(rng.normal(size=4))
    for h in (None, h0):
        hs, outs = _forward(p, xs, h, activation=activation)
        want_hs, want_outs = python_loop_forward(p, xs, h, activation)
        np.testing.assert_allclose(np.asarray(hs), want_hs, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(np.asarray(outs), want_outs, rtol=1e-13, atol=1e-14)


def test_single_step_sequence(x64):
    rng = np.random.default_rng(1)
    p = random_params(rng, 2, 3, 1)
    xs = put(rng.normal(size=(1, 2)))
    hs, outs = _forward(p, xs, None, activation="tanh")
    want_hs, want_outs = python_loop_forward(p, xs, None, "tanh")
    assert hs.shape == (1, 3) and outs.shape == (1, 1)
    np.testing.assert_allclose(np.asarray(outs), want_outs, rtol=1e-13)


def test_vmap_over_a_batch_equals_a_loop(x64):
    rng = np.random.default_rng(2)
    p = random_params(rng, 3, 4, 2)
    xs = put(rng.normal(size=(5, 6, 3)))
    h0 = put(rng.normal(size=(5, 4)))
    hs, outs = jax.jit(jax.vmap(lambda x, h: rnn_forward(p, x, h)))(xs, h0)
    xs, h0, hs, outs = (np.asarray(a) for a in (xs, h0, hs, outs))  # indexed in NumPy: no eager programs
    for b in range(5):
        want_hs, want_outs = python_loop_forward(p, xs[b], h0[b], "tanh")
        np.testing.assert_allclose(hs[b], want_hs, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(outs[b], want_outs, rtol=1e-13, atol=1e-14)


def test_time_major_batched_states_and_preactivations(x64):
    """rnn_states on (T, B, D) gives every sequence's states, and phi(a_t) = h_t."""
    rng = np.random.default_rng(3)
    p = random_params(rng, 3, 4, 2)
    xs = put(rng.normal(size=(6, 5, 3)))  # time-major batch
    hs, as_ = jax.jit(rnn_states, static_argnames=("activation",))(p, xs, None, activation="sigmoid")
    assert hs.shape == as_.shape == (6, 5, 4)
    np.testing.assert_allclose(np.asarray(hs), PHI["sigmoid"](np.asarray(as_)), rtol=1e-13)
    hs, xs = np.asarray(hs), np.asarray(xs)
    for b in range(5):
        np.testing.assert_allclose(hs[:, b], python_loop_forward(p, xs[:, b], None, "sigmoid")[0], rtol=1e-13)


@pytest.mark.parametrize(("xs_shape", "h0_shape", "message"), [
    ((6, 2), None, r"input width mismatch: xs has D=2 features per step but W_xh expects D=3"),
    ((6,), None, r"xs must have shape \(T, D\) with D=3, got shape \(6,\)"),
    ((2, 6, 3), None, r"xs must have shape \(T, D\) with D=3, got shape \(2, 6, 3\)"),
    ((0, 3), None, r"at least one time step"),
    ((6, 3), (5,), r"h0 must have shape \(4,\), got \(5,\)"),
])
def test_bad_inputs_raise(xs_shape, h0_shape, message):
    p = random_params(np.random.default_rng(4), 3, 4, 2)
    h0 = None if h0_shape is None else jnp.zeros(h0_shape)
    with pytest.raises(ValueError, match=message):
        rnn_forward(p, jnp.zeros(xs_shape), h0)


def test_unknown_activation_raises():
    p = random_params(np.random.default_rng(5), 3, 4, 2)
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'; expected one of"):
        rnn_forward(p, jnp.zeros((2, 3)), activation="gelu")
