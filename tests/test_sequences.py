"""Sequences as researchers use them: padded lengths, reverse runs, stacked and bidirectional models, tuple carries.

Every check compares against an independent run: the unpadded sequence, the flipped sequence, layers run by hand.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax import cells

T, D, H, O = 7, 3, 4, 2


def _cases():
    """(name, cell, params, carry0 or None) in float64; the LSTM's carry is a plain tuple."""
    key = jax.random.PRNGKey(0)
    out = []
    for name, cell in (("vanilla", cells.vanilla("tanh", dtype=jnp.float64)), ("lstm", cells.lstm(dtype=jnp.float64)),
                       ("gru", cells.gru(dtype=jnp.float64))):
        p = cell.init(key, D, H)
        carry = tuple(cell.initial_carry(p)) if name == "lstm" else None
        out.append((name, cell, p, carry))
    return out


@pytest.fixture
def xs(x64):
    return jax.random.normal(jax.random.PRNGKey(1), (T, D), jnp.float64)


def close(a, b, tol=1e-12):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


@pytest.mark.parametrize("index", range(3), ids=["vanilla", "lstm", "gru"])
def test_length_equals_the_unpadded_sequence(xs, index):
    _, cell, p, carry = _cases()[index]
    L = 4
    hs, c_T = rnnjax.unroll(cell, p, xs, carry, length=L)
    hs_ref, c_ref = rnnjax.unroll(cell, p, xs[:L], carry)
    close(hs[:L], hs_ref)
    np.testing.assert_array_equal(hs[L:], 0.0)  # steps past the length give zero outputs
    close(c_T, c_ref)  # ... and leave the carry unchanged
    assert type(c_T) is type(c_ref)
    close(rnnjax.unroll(cell, p, xs, carry, length=T), rnnjax.unroll(cell, p, xs, carry))  # L = T: all steps


@pytest.mark.parametrize("index", range(3), ids=["vanilla", "lstm", "gru"])
def test_reverse_runs_last_to_first_and_keeps_the_time_order(xs, index):
    _, cell, p, carry = _cases()[index]
    hs, c_T = rnnjax.unroll(cell, p, xs, carry, reverse=True)
    hs_flip, c_flip = rnnjax.unroll(cell, p, xs[::-1], carry)
    close(hs, hs_flip[::-1])  # hs[t] read xs[T-1], ..., xs[t]
    close(c_T, c_flip)
    L = 5  # with a length: reversed over the valid steps only
    hs_L, c_L = rnnjax.unroll(cell, p, xs, carry, reverse=True, length=L)
    hs_ref, c_ref = rnnjax.unroll(cell, p, xs[:L][::-1], carry)
    close(hs_L[:L], hs_ref[::-1])
    np.testing.assert_array_equal(hs_L[L:], 0.0)
    close(c_L, c_ref)


@pytest.mark.parametrize(("name", "loss"), [("vanilla", "mse_last"), ("vanilla", "mse"), ("gru", "xent")])
def test_a_padded_batch_gives_the_loss_and_gradient_of_the_unpadded_sequences(x64, loss, name):
    cell = {"vanilla": cells.vanilla("tanh", dtype=jnp.float64), "gru": cells.gru(dtype=jnp.float64)}[name]
    model = rnnjax.init_model(cell, jax.random.PRNGKey(2), D, H, O)
    rng = np.random.default_rng(3)
    lengths = np.array([7, 3, 5])
    xs = jnp.asarray(rng.normal(size=(3, T, D)))
    ys = {"mse_last": rng.normal(size=(3, O)), "mse": rng.normal(size=(3, T, O)),
          "xent": rng.integers(0, O, size=(3, T))}[loss]
    ys = jnp.asarray(ys)
    loss_fn = rnnjax.make_loss(cell, loss)
    value, grads = jax.jit(jax.value_and_grad(loss_fn))(model, (xs, ys, jnp.asarray(lengths)))  # not ~40 eager ops

    def unpadded(m):  # each sequence cut to its length, on its own: the mean of their losses
        total = 0.0
        for b, n in enumerate(lengths):
            y = ys[b] if loss == "mse_last" else ys[b, :n]
            total = total + loss_fn(m, (xs[b, :n], y))
        return total / len(lengths)

    ref_value, ref_grads = jax.jit(jax.value_and_grad(unpadded))(model)
    close(value, ref_value)
    close(grads, ref_grads)


def test_stack_is_layers_run_by_hand(xs):
    first, second = cells.vanilla("tanh", dtype=jnp.float64), cells.lstm(dtype=jnp.float64)
    both = cells.stack([first, second])
    p = both.init(jax.random.PRNGKey(4), D, H)
    k1, k2 = jax.random.split(jax.random.PRNGKey(4))
    close(p.layers, (first.init(k1, D, H), second.init(k2, H, H)))  # layer 2 reads layer 1's H units
    hs, (c1, c2) = rnnjax.unroll(both, p, xs)
    h1, c1_ref = rnnjax.unroll(first, p.layers[0], xs)
    h2, c2_ref = rnnjax.unroll(second, p.layers[1], h1)
    close((hs, c1, c2), (h2, c1_ref, c2_ref))
    two = cells.stack([first, cells.vanilla("relu", dtype=jnp.float64)])  # every layer has a whole-sequence path
    assert two.unroll is not None and both.unroll is None
    p2 = two.init(jax.random.PRNGKey(6), D, H)
    stepwise = two._replace(unroll=None)  # the step-by-step recursion equals the layer-by-layer path
    close(rnnjax.unroll(stepwise, p2, xs), rnnjax.unroll(two, p2, xs))
    assert cells.stack([first, second]) == both  # equal cells: one compiled program
    with pytest.raises(ValueError, match="stack needs a non-empty sequence"):
        cells.stack([])


def test_bidirectional_concatenates_a_forward_and_a_backward_run(xs):
    fw, bw = cells.gru(dtype=jnp.float64), cells.vanilla("tanh", dtype=jnp.float64)
    p = rnnjax.init_bidirectional(fw, bw, jax.random.PRNGKey(5), D, H)
    both = rnnjax.bidirectional(fw, bw, p, xs)
    assert both.shape == (T, 2 * H)
    close(both[:, :H], rnnjax.unroll(fw, p.forward, xs)[0])
    close(both[:, H:], rnnjax.unroll(bw, p.backward, xs[::-1])[0][::-1])  # h^bw_t has read x_T..x_t
    L = 4
    padded = rnnjax.bidirectional(fw, bw, p, xs, length=L)
    close(padded[:L], rnnjax.bidirectional(fw, bw, p, xs[:L]))
    np.testing.assert_array_equal(padded[L:], 0.0)


def test_init_model_dtype_sets_every_parameter():
    model = rnnjax.init_model(cells.lstm(), jax.random.PRNGKey(0), D, H, O, dtype=jnp.bfloat16)
    assert {a.dtype for a in jax.tree.leaves(model)} == {jnp.dtype(jnp.bfloat16)}


def test_a_carry_of_another_dtype_is_one_clear_error():
    cell = cells.vanilla("tanh")  # float32 parameters
    p = cell.init(jax.random.PRNGKey(0), D, H)
    xs = jnp.zeros((T, D), jnp.float32)
    with pytest.raises(ValueError, match=r"took int32\[4\], returned float32\[4\]"):
        rnnjax.unroll(cell, p, xs, jnp.zeros(H, jnp.int32))
    with pytest.raises(ValueError, match=r"length must be an integer scalar"):
        rnnjax.unroll(cell, p, xs, length=2.5)
    with pytest.raises(ValueError, match=r"step must return a carry like the one it takes"):
        rnnjax.lyapunov_of(rnnjax.cell_step(cell, p), jnp.zeros(H, jnp.int32), xs)
