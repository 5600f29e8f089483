"""The hand-written BPTT against jax.grad (float64, 1e-10 relative) for every activation x loss, with
and without h0, batched and not, over hypothesis-drawn shapes including T = 1; against central finite
differences; the batch mean against per-sequence gradients; the batch contracted inside the backward
pass (no per-example weight gradient anywhere in the program); and the ValueErrors for bad input."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import zeros
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

from rnnjax import RNNParams, bptt, loss_and_grad, rnn_forward
from rnnjax.bptt import loss_and_grad_with_state, resolve_method
from rnnjax.losses import get_loss

ACTIVATIONS = ["tanh", "sigmoid", "relu", "linear"]
LOSSES = ["mse_last", "mse", "xent"]


put = jax.device_put  # NumPy data onto the device: no program (jnp.asarray compiles one per shape)


def random_params(rng, D, H, O) -> RNNParams:
    """Float64 parameters drawn with NumPy (JAX's PRNG would add compile time to every shape)."""
    return RNNParams(W_xh=put(rng.normal(size=(D, H))), W_hh=put(rng.normal(size=(H, H)) / np.sqrt(H)),
                     b_h=put(0.1 * rng.normal(size=H)), W_ho=put(rng.normal(size=(H, O))),
                     b_o=put(0.1 * rng.normal(size=O)))


def random_targets(rng, loss, lead, T, O):
    if loss == "mse_last":
        return put(rng.normal(size=lead + (O,)))
    if loss == "mse":
        return put(rng.normal(size=lead + (T, O)))
    return put(rng.integers(0, O, size=lead + (T,)))


def random_case(seed, T, D, H, O, B, loss, with_h0):
    """params, xs, targets, h0 for one sequence (B None) or a batch of B."""
    rng = np.random.default_rng(seed)
    lead = () if B is None else (B,)
    p = random_params(rng, D, H, O)
    xs = put(rng.normal(size=lead + (T, D)))
    h0 = put(0.5 * rng.normal(size=lead + (H,))) if with_h0 else None
    return p, xs, random_targets(rng, loss, lead, T, O), h0


def _both(p, xs, targets, h0, *, loss, activation):
    """(loss, grads, h_T) by the hand BPTT and by jax.grad."""
    run = lambda method: loss_and_grad_with_state(p, xs, targets, loss=loss, activation=activation, h0=h0,
                                                  method=method)
    return run("bptt"), run("autograd")


both_methods = jax.jit(_both, static_argnames=("loss", "activation"))  # one compiled program for both


def assert_close(hand, auto, rtol=1e-10):
    """Every leaf within rtol of the reference, relative to that leaf's largest entry."""
    for name, a, b in zip(("loss", "grads", "h_T"), hand, auto, strict=True):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            x, y = np.asarray(x), np.asarray(y)
            assert x.shape == y.shape, name
            scale = max(float(np.max(np.abs(y))), 1e-300)
            assert float(np.max(np.abs(x - y))) <= rtol * scale, f"{name}: {np.max(np.abs(x - y)) / scale:.2e}"


@pytest.mark.parametrize("loss", LOSSES)
def test_hand_bptt_equals_jax_grad_for_every_activation(loss, x64):
    """Each activation, on one sequence starting from a given h0 and on a batch starting from zeros.
    All 16 gradient programs of a loss are compiled as one (a compile has a large fixed cost)."""
    cases = [random_case(0, 5, 3, 4, 3, None, loss, True), random_case(1, 5, 3, 4, 3, 3, loss, False)]

    @jax.jit
    def every_activation(cases):
        return {act: [_both(p, xs, y, h0, loss=loss, activation=act) for p, xs, y, h0 in cases]
                for act in ACTIVATIONS}

    for act, results in every_activation(cases).items():
        for hand, auto in results:
            assert_close(hand, auto)
            assert float(np.max(np.abs(hand[1].W_hh))) > 1e-6, act  # a gradient that is there to compare


SHAPES = [  # (T, D, H, O): few distinct shapes, since every new one compiles a new program
    (1, 2, 3, 2),
    (2, 1, 5, 1),
    (7, 3, 4, 3),
]


@settings(max_examples=5, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.sampled_from(SHAPES), B=st.sampled_from([None, 4]), activation=st.sampled_from(ACTIVATIONS),
       loss=st.sampled_from(LOSSES), with_h0=st.booleans(), seed=st.integers(0, 2 ** 31))
def test_hand_bptt_equals_jax_grad_on_drawn_shapes(x64, shape, B, activation, loss, with_h0, seed):
    T, D, H, O = shape
    p, xs, y, h0 = random_case(seed, T, D, H, O, B, loss, with_h0)
    hand, auto = both_methods(p, xs, y, h0, loss=loss, activation=activation)
    assert_close(hand, auto)


@pytest.mark.parametrize("loss", LOSSES)
def test_gradients_equal_central_finite_differences(loss, x64):
    """(L(theta + eps e_i) - L(theta - eps e_i)) / 2 eps for every one of the 26 parameters; the error
    of the central difference is O(eps^2) ~ 1e-10, rounding ~ 1e-16 / eps ~ 1e-10."""
    p, xs, y, h0 = random_case(1, 3, 2, 3, 2, None, loss, True)
    flat, unravel = ravel_pytree(p)
    eps = 1e-6

    @jax.jit
    def fd_and_hand(flat):
        value = lambda f: loss_and_grad(unravel(f), xs, y, loss=loss, activation="tanh", h0=h0)[0]
        steps = eps * jnp.eye(flat.size)
        fd = jax.vmap(lambda e: (value(flat + e) - value(flat - e)) / (2 * eps))(steps)
        return fd, ravel_pytree(loss_and_grad(unravel(flat), xs, y, loss=loss, activation="tanh", h0=h0)[1])[0]

    fd, hand = fd_and_hand(flat)
    assert flat.size == 2 * 3 + 3 * 3 + 3 + 3 * 2 + 2
    np.testing.assert_allclose(np.asarray(hand), np.asarray(fd), rtol=1e-6, atol=1e-8)


CASE = (4, 3, 4, 2, 3)  # (T, D, H, O, B) of the tests below: the library's jitted loss_and_grad is compiled once
# for this shape per loss and shared by them (a jax.jit of a fresh closure per test would compile each again)


def test_batch_gradient_is_the_mean_of_per_sequence_gradients(x64):
    p, xs, y, h0 = random_case(2, *CASE, "mse", True)
    value, grads = loss_and_grad(p, xs, y, loss="mse", h0=h0)
    xs_np, y_np, h0_np = np.asarray(xs), np.asarray(y), np.asarray(h0)  # one sequence each, sliced in NumPy
    each = [loss_and_grad(p, put(xs_np[b]), put(y_np[b]), loss="mse", h0=put(h0_np[b])) for b in range(len(xs_np))]
    assert float(value) == pytest.approx(np.mean([float(v) for v, _ in each]), rel=1e-13)
    for name, g in grads._asdict().items():
        mean = np.mean([np.asarray(getattr(gb, name)) for _, gb in each], axis=0)
        np.testing.assert_allclose(np.asarray(g), mean, rtol=1e-12, atol=1e-15)


def test_shared_h0_is_broadcast_to_the_batch(x64):
    p, xs, y, _ = random_case(3, *CASE, "mse", False)
    h0 = np.linspace(-0.5, 0.5, 4)
    shared = loss_and_grad(p, xs, y, loss="mse", h0=put(h0))
    per_example = loss_and_grad(p, xs, y, loss="mse", h0=put(np.tile(h0, (3, 1))))
    assert_close((shared[0], shared[1], 0.0), (per_example[0], per_example[1], 0.0), rtol=1e-14)


def test_bptt_takes_any_output_gradient(x64):
    """bptt(params, xs, dL/do) is the vector-Jacobian product of the outputs with dL/do (batch mean)."""
    rng = np.random.default_rng(4)
    p, xs, _, h0 = random_case(4, 5, 2, 3, 2, 3, "mse", True)
    g_out = put(rng.normal(size=(3, 5, 2)))

    @jax.jit
    def hand_and_vjp(p):
        outputs = lambda q: jax.vmap(lambda x, h: rnn_forward(q, x, h)[1])(xs, h0)
        _, vjp = jax.vjp(outputs, p)
        return bptt(p, xs, g_out, h0), jax.tree.map(lambda g: g / 3, vjp(g_out)[0])

    hand, auto = hand_and_vjp(p)
    assert_close((0.0, hand, 0.0), (0.0, auto, 0.0))


def test_final_state_is_the_last_hidden_state(x64):
    p, xs, y, h0 = random_case(5, *CASE, "xent", True)
    _, _, h_last = loss_and_grad_with_state(p, xs, y, loss="xent", h0=h0)
    hs = jax.jit(jax.vmap(lambda x, h: rnn_forward(p, x, h)[0]))(xs, h0)
    np.testing.assert_allclose(np.asarray(h_last), np.asarray(hs)[:, -1], rtol=1e-13, atol=1e-15)


def test_hand_bptt_equals_the_numpy_reference_of_the_benchmarks(x64):
    """benchmarks/_numpy_rnn.py (min-char-rnn in NumPy), the baseline the speed figures are quoted against."""
    from benchmarks._numpy_rnn import numpy_loss_and_grad

    p, xs, y, h0 = random_case(10, 7, 3, 4, 3, 2, "xent", True)
    value, grads = jax.jit(lambda: loss_and_grad(p, xs, y, loss="xent", activation="relu", h0=h0))()
    value_np, grads_np = numpy_loss_and_grad(p, xs, y, loss="xent", activation="relu", h0=h0)
    assert value_np == pytest.approx(float(value), rel=1e-12)
    for name, g in grads._asdict().items():
        np.testing.assert_allclose(grads_np[name], np.asarray(g), rtol=1e-10, atol=1e-13, err_msg=name)


def test_the_vanilla_cells_jax_grad_is_the_hand_bptt_and_train_is_fit(x64):
    """jax.grad of the generic loss on the vanilla cell runs the hand BPTT (its custom_vjp): equal to jax.grad of a
    plain scan of the report's step; and train (SGD) takes the same steps as fit on that cell."""
    import optax

    from rnnjax import cells, fit, make_loss, train

    p, xs, y, _ = random_case(12, 6, 3, 4, 2, 5, "mse", False)
    loss_bptt = make_loss(cells.vanilla("tanh", method="bptt"), "mse")

    def plain(p):  # the step of report §1.2 by lax.scan, differentiated by JAX
        def one(x, t):
            _, hs = jax.lax.scan(lambda h, x_t: (jnp.tanh(x_t @ p.W_xh + p.b_h + h @ p.W_hh),) * 2,
                                 jnp.zeros(4), x)
            return 0.5 * jnp.sum((hs @ p.W_ho + p.b_o - t) ** 2)

        return jnp.mean(jax.vmap(one)(xs, y))

    close = lambda a, b: [np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)
                          for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)]
    close(jax.jit(jax.grad(loss_bptt))(p, (xs, y)), jax.jit(jax.grad(plain))(p))  # each one program, not ~40 eager
    xs, y = put(np.asarray(xs)[None]), put(np.asarray(y)[None])  # one mini-batch, in NumPy (no eager programs)
    p_fit, hist_fit = fit(loss_bptt, p, (xs, y), optax.sgd(0.1), num_steps=3)
    p_train, hist_train = train(p, xs, y, loss="mse", num_steps=3, learning_rate=0.1, method="bptt",
                                spec_norm="svd")
    close((hist_train.loss, p_train), (hist_fit.loss, p_fit))


def test_float32_in_float32_out():
    p, xs, y, _ = random_case(6, 3, 2, 3, 2, 2, "mse_last", False)
    p32 = jax.tree.map(lambda a: a.astype(jnp.float32), p)
    value, grads = jax.jit(lambda: loss_and_grad(p32, xs.astype(jnp.float32), y.astype(jnp.float32),
                                                 loss="mse_last"))()
    assert value.dtype == jnp.float32 and all(g.dtype == jnp.float32 for g in grads)


def _all_avals(jaxpr):
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            yield v.aval
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            yield from _all_avals(sub)


def test_the_batch_is_contracted_inside_the_backward_pass():
    """No value in the whole gradient program holds one (H, H) weight gradient per example."""
    B, T, D, H, O = 7, 6, 3, 4, 2  # distinct sizes (also T - 1 and D + 1 + H), so shapes read unambiguously
    p, xs, y, _ = random_case(7, T, D, H, O, B, "mse", False)
    jaxpr = jax.make_jaxpr(lambda p: loss_and_grad(p, xs, y, loss="mse"))(p).jaxpr
    shapes = [tuple(a.shape) for a in _all_avals(jaxpr) if hasattr(a, "shape")]
    assert any(B in s for s in shapes)  # the batch is in the program ...
    assert not [s for s in shapes if B in s and s.count(H) >= 2]  # ... but never beside an (H, H) gradient
    # the check can fail: vmapping the one-sequence BPTT and averaging does store (B, H, H) gradients
    per_example = jax.make_jaxpr(lambda p: jax.vmap(lambda x, t: loss_and_grad(p, x, t, loss="mse"))(xs, y))(p).jaxpr
    assert [s for s in (tuple(a.shape) for a in _all_avals(per_example)) if B in s and s.count(H) >= 2]


def test_loss_and_grad_is_differentiable_code_under_jit_and_vmap(x64):
    """The hand BPTT is an ordinary JAX function: vmap over parameter sets equals a loop."""
    p, xs, y, _ = random_case(8, *CASE, "mse", False)
    scaled = [jax.tree.map(lambda a, s=scale: s * np.asarray(a), p) for scale in (1.0, 0.5)]  # in NumPy
    stacked = jax.tree.map(lambda *a: put(np.stack(a)), *scaled)
    values, grads = jax.jit(jax.vmap(lambda q: loss_and_grad(q, xs, y, loss="mse")))(stacked)
    values, W_hh = np.asarray(values), np.asarray(grads.W_hh)
    for i, q in enumerate(scaled):
        v, g = loss_and_grad(jax.tree.map(put, q), xs, y, loss="mse")  # the loop: one set at a time
        assert float(values[i]) == pytest.approx(float(v), rel=1e-13)
        np.testing.assert_allclose(W_hh[i], np.asarray(g.W_hh), rtol=1e-12)


# ------------------------------------------------------------------------------------------ bad input

P = random_params(np.random.default_rng(9), 3, 4, 2)
XS = put(np.zeros((5, 3)))


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(xs=zeros(5, 2)), r"input width mismatch: xs has D=2 features per step but W_xh expects D=3"),
    (dict(xs=zeros(2, 2, 5, 3)), r"xs must have shape \(T, D\) with D=3, got shape \(2, 2, 5, 3\)"),
    (dict(targets=zeros(5, 1)), r"targets for loss 'mse' must have shape \(5, 2\) .*got \(5, 1\)"),
    (dict(targets=zeros(5, 2, dtype=np.int32)), r"targets for loss 'mse' must be floating point, got dtype int32"),
    (dict(loss="xent", targets=zeros(5)), r"targets for loss 'xent' must be integer class indices"),
    (dict(loss="mse_last"), r"targets for loss 'mse_last' must have shape \(2,\)"),
    (dict(loss="l1"), r"unknown loss 'l1'; expected one of \['mse', 'mse_last', 'xent'\]"),
    (dict(activation="elu"), r"unknown activation 'elu'; expected one of \['linear', 'relu', 'sigmoid', 'tanh'\]"),
    (dict(method="finite_differences"),
     r"unknown method 'finite_differences'; expected one of \['auto', 'autograd', 'bptt'\]"),
    (dict(h0=zeros(3)), r"h0 must have shape \(4,\), got \(3,\)"),
])
def test_bad_inputs_raise(kwargs, message):
    args = dict(xs=XS, targets=zeros(5, 2), loss="mse") | kwargs
    with pytest.raises(ValueError, match=message):
        loss_and_grad(P, args.pop("xs"), args.pop("targets"), **args)


def test_bad_batched_h0_and_output_gradient_raise():
    xs = zeros(3, 5, 3)
    with pytest.raises(ValueError, match=r"h0 must have shape \(3, 4\), got \(2, 4\)"):
        loss_and_grad(P, xs, zeros(3, 5, 2), loss="mse", h0=zeros(2, 4))
    with pytest.raises(ValueError, match=r"dL_doutputs must have shape \(3, 5, 2\), got \(3, 5\)"):
        bptt(P, xs, zeros(3, 5))
    assert get_loss("mse").integer_targets is False


def test_auto_method_is_the_hand_bptt_on_cpu_and_jax_grad_on_accelerators(monkeypatch):
    assert resolve_method("auto", zeros(3)) == "bptt"  # an array on this machine's CPU
    assert resolve_method("autograd") == "autograd" and resolve_method("bptt") == "bptt"
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert resolve_method("auto") == "autograd"  # traced or host data: the default backend decides
    assert resolve_method("auto", zeros(3)) == "bptt"  # data already on a CPU device: its platform decides
