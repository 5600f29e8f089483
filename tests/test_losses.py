"""The per-sequence losses: closed-form values, dL/do against jax.grad, batching, and target validation."""

import math

import jax
import numpy as np
import pytest

from rnnjax.losses import LOSSES, check_targets, get_loss

put = jax.device_put  # NumPy data onto the device: no program (jnp.array, jnp.zeros compile one per shape)
O2 = put(np.array([[1.0, -2.0], [0.5, 3.0], [-1.0, 0.25]]))  # outputs (T=3, O=2)


def test_registry_is_exactly_the_three_names():
    assert sorted(LOSSES) == ["mse", "mse_last", "xent"]


def test_mse_last_value_by_hand():
    y = put(np.array([0.0, 1.0]))
    # 0.5 ||o_T - y||^2 with o_T = (-1, 0.25): 0.5 (1 + 0.5625)
    assert float(jax.jit(get_loss("mse_last").value)(O2, y)) == pytest.approx(0.78125, rel=1e-7)


def test_mse_value_by_hand():
    y = put(np.zeros((3, 2)))
    # 0.5 * sum of squares of every output
    want = 0.5 * (1 + 4 + 0.25 + 9 + 1 + 0.0625)
    assert float(jax.jit(get_loss("mse").value)(O2, y)) == pytest.approx(want, rel=1e-7)


def test_xent_value_by_hand():
    y = put(np.array([0, 1, 1]))
    rows = zip(np.asarray(O2).tolist(), [0, 1, 1], strict=True)
    want = sum(math.log(math.exp(a) + math.exp(b)) - (a, b)[k] for (a, b), k in rows)
    assert float(jax.jit(get_loss("xent").value)(O2, y)) == pytest.approx(want, rel=1e-6)


def _targets(name, rng, lead, T, O):
    if name == "mse_last":
        return put(rng.normal(size=lead + (O,)))
    if name == "mse":
        return put(rng.normal(size=lead + (T, O)))
    return put(rng.integers(0, O, size=lead + (T,)))


@pytest.mark.parametrize("name", ["mse_last", "mse", "xent"])
def test_grad_equals_jax_grad_of_value(name, x64):
    rng = np.random.default_rng(0)
    o = put(rng.normal(size=(4, 3)) * 3)
    y = _targets(name, rng, (), 4, 3)
    spec = get_loss(name)
    hand, auto, (value, grad) = jax.jit(lambda o, y: (spec.grad(o, y), jax.grad(spec.value)(o, y),
                                                      spec.both(o, y)))(o, y)
    np.testing.assert_allclose(np.asarray(hand), np.asarray(auto), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(auto), rtol=1e-12, atol=1e-14)  # the joint form
    assert float(value) == pytest.approx(float(spec.value(o, y)), rel=1e-14)


@pytest.mark.parametrize("name", ["mse_last", "mse", "xent"])
def test_batched_losses_are_per_sequence(name, x64):
    rng = np.random.default_rng(1)
    o = put(rng.normal(size=(5, 4, 3)))
    y = _targets(name, rng, (5,), 4, 3)
    spec = get_loss(name)

    @jax.jit
    def both(o, y):
        one = jax.vmap(lambda o1, y1: (spec.value(o1, y1), spec.grad(o1, y1)))(o, y)  # one sequence at a time
        return (spec.value(o, y), spec.grad(o, y)), one

    (values, grads), (values1, grads1) = both(o, y)
    assert values.shape == (5,) and grads.shape == o.shape
    np.testing.assert_allclose(np.asarray(values), np.asarray(values1), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(grads), np.asarray(grads1), rtol=1e-13)


def test_mse_last_gradient_is_zero_before_the_last_step():
    g = jax.jit(get_loss("mse_last").grad)(O2, put(np.array([0.0, 1.0])))
    g = np.asarray(g)
    np.testing.assert_array_equal(g[:-1], 0.0)
    np.testing.assert_allclose(g[-1], [-1.0, -0.75])


@pytest.mark.parametrize(("name", "targets", "message"), [
    ("mse_last", put(np.zeros((3, 2))), r"targets for loss 'mse_last' must have shape \(2,\)"),
    ("mse", put(np.zeros((2,))), r"targets for loss 'mse' must have shape \(3, 2\)"),
    ("xent", put(np.zeros((3, 1), np.int32)), r"targets for loss 'xent' must have shape \(3,\)"),
    ("xent", put(np.zeros((3,))), r"must be integer class indices, got dtype float32"),
    ("mse", put(np.zeros((3, 2), np.int32)), r"must be floating point, got dtype int32"),
])
def test_check_targets_rejects_wrong_shape_or_dtype(name, targets, message):
    with pytest.raises(ValueError, match=message):
        check_targets(name, (3, 2), targets)


def test_unknown_loss_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; expected one of \['mse', 'mse_last', 'xent'\]"):
        get_loss("hinge")
