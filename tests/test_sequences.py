"""Sequences as researchers use them: padded lengths, reverse runs, stacked and bidirectional models, tuple carries.

Every check compares against an independent run: the unpadded sequence, the flipped sequence, layers run by hand.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import numpy_params

import rnnjax
from rnnjax import cells

T, D, H, O = 7, 3, 4, 2
L = 4  # a padded length inside T (traced by unroll: every value runs the same program)


def numpy_like(init, seed, scale=0.5):
    """``init(key)``'s pytree filled with NumPy normals of std ``scale`` (:func:`conftest.numpy_params`)."""
    rng = np.random.default_rng(seed)
    return numpy_params(init, draw=lambda shape: scale * rng.normal(size=shape))


def _cases():
    """(name, cell, params, carry0 or None) in float64; the LSTM's carry is a plain tuple."""
    out = []
    for name, cell in (("vanilla", cells.vanilla("tanh", dtype=jnp.float64)), ("lstm", cells.lstm(dtype=jnp.float64)),
                       ("gru", cells.gru(dtype=jnp.float64))):
        p = numpy_like(lambda k, cell=cell: cell.init(k, D, H), 0)
        carry = tuple(cell.initial_carry(p)) if name == "lstm" else None
        out.append((name, cell, p, carry))
    return out


@pytest.fixture
def xs(x64):
    return jax.device_put(np.random.default_rng(1).normal(size=(T, D)))


def close(a, b, tol=1e-12):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


@pytest.mark.parametrize("index", range(3), ids=["vanilla", "lstm", "gru"])
def test_length_equals_the_unpadded_sequence(xs, index):
    _, cell, p, carry = _cases()[index]
    hs, c_T = rnnjax.unroll(cell, p, xs, carry, length=L)
    hs_ref, c_ref = rnnjax.unroll(cell, p, jax.device_put(np.asarray(xs)[:L]), carry)
    hs = np.asarray(hs)  # slices in NumPy: no eager program per slice
    close(hs[:L], hs_ref)
    np.testing.assert_array_equal(hs[L:], 0.0)  # steps past the length give zero outputs
    close(c_T, c_ref)  # ... and leave the carry unchanged
    assert type(c_T) is type(c_ref)
    close(rnnjax.unroll(cell, p, xs, carry, length=T), rnnjax.unroll(cell, p, xs, carry))  # L = T: all steps


@pytest.mark.parametrize("index", range(3), ids=["vanilla", "lstm", "gru"])
def test_reverse_runs_last_to_first_and_keeps_the_time_order(xs, index):
    _, cell, p, carry = _cases()[index]
    xs_np = np.asarray(xs)
    hs, c_T = rnnjax.unroll(cell, p, xs, carry, reverse=True)
    hs_flip, c_flip = rnnjax.unroll(cell, p, jax.device_put(xs_np[::-1].copy()), carry)
    close(hs, np.asarray(hs_flip)[::-1])  # hs[t] read xs[T-1], ..., xs[t]
    close(c_T, c_flip)
    # with a length: reversed over the valid steps only
    hs_L, c_L = rnnjax.unroll(cell, p, xs, carry, reverse=True, length=L)
    hs_ref, c_ref = rnnjax.unroll(cell, p, jax.device_put(xs_np[:L][::-1].copy()), carry)
    hs_L = np.asarray(hs_L)
    close(hs_L[:L], np.asarray(hs_ref)[::-1])
    np.testing.assert_array_equal(hs_L[L:], 0.0)
    close(c_L, c_ref)


@pytest.mark.parametrize(("name", "loss"), [("vanilla", "mse_last"), ("vanilla", "mse"), ("gru", "xent")])
def test_a_padded_batch_gives_the_loss_and_gradient_of_the_unpadded_sequences(x64, loss, name):
    cell = {"vanilla": cells.vanilla("tanh", dtype=jnp.float64), "gru": cells.gru(dtype=jnp.float64)}[name]
    model = numpy_like(lambda k: rnnjax.init_model(cell, k, D, H, O), 2)
    rng = np.random.default_rng(3)
    lengths = np.array([7, 3, 5])
    xs = rng.normal(size=(3, T, D))
    ys = {"mse_last": rng.normal(size=(3, O)), "mse": rng.normal(size=(3, T, O)),
          "xent": rng.integers(0, O, size=(3, T))}[loss]
    loss_fn = rnnjax.make_loss(cell, loss)

    def unpadded(m):  # each sequence cut to its length, on its own: the mean of their losses
        total = 0.0
        for b, n in enumerate(lengths):
            y = ys[b] if loss == "mse_last" else ys[b, :n]
            total = total + loss_fn(m, (jnp.asarray(xs[b, :n]), jnp.asarray(y)))
        return total / len(lengths)

    value, grads = jax.jit(jax.value_and_grad(loss_fn))(model, jax.device_put((xs, ys, lengths)))  # not ~40 eager ops
    ref_value, ref_grads = jax.jit(jax.value_and_grad(unpadded))(model)
    close(value, ref_value)
    close(grads, ref_grads)


def test_stack_is_layers_run_by_hand(xs):
    first, second = cells.vanilla("tanh", dtype=jnp.float64), cells.lstm(dtype=jnp.float64)
    both = cells.stack([first, second])
    two = cells.stack([first, cells.vanilla("relu", dtype=jnp.float64)])  # every layer has a whole-sequence path

    @jax.jit  # the inits in one program, not ~50 eager ones
    def inits():
        k1, k2 = jax.random.split(jax.random.PRNGKey(4))
        return both.init(jax.random.PRNGKey(4), D, H), (first.init(k1, D, H), second.init(k2, H, H))

    p, layers_ref = inits()
    close(p.layers, layers_ref)  # layer 2 reads layer 1's H units
    hs, (c1, c2) = rnnjax.unroll(both, p, xs)
    h1, c1_ref = rnnjax.unroll(first, p.layers[0], xs)
    h2, c2_ref = rnnjax.unroll(second, p.layers[1], h1)
    close((hs, c1, c2), (h2, c1_ref, c2_ref))
    assert two.unroll is not None and both.unroll is None
    p2 = numpy_like(lambda k: two.init(k, D, H), 6)
    stepwise = two._replace(unroll=None)  # the step-by-step recursion equals the layer-by-layer path
    close(rnnjax.unroll(stepwise, p2, xs), rnnjax.unroll(two, p2, xs))
    assert cells.stack([first, second]) == both  # equal cells: one compiled program
    with pytest.raises(ValueError, match="stack needs a non-empty sequence"):
        cells.stack([])


def test_bidirectional_concatenates_a_forward_and_a_backward_run(xs):
    fw, bw = cells.gru(dtype=jnp.float64), cells.vanilla("tanh", dtype=jnp.float64)
    p = numpy_like(lambda k: rnnjax.init_bidirectional(fw, bw, k, D, H), 5)
    xs_np = np.asarray(xs)

    @jax.jit  # the three runs in one program, not ~40 eager ops
    def runs(p, xs, xs_L):
        bi = lambda x, **kw: rnnjax.bidirectional(fw, bw, p, x, **kw)
        return bi(xs), bi(xs, length=L), bi(xs_L)

    both, padded, cut = (np.asarray(a) for a in runs(p, xs, jax.device_put(xs_np[:L])))
    assert both.shape == (T, 2 * H)
    close(both[:, :H], rnnjax.unroll(fw, p.forward, xs)[0])
    hs_bw = np.asarray(rnnjax.unroll(bw, p.backward, jax.device_put(xs_np[::-1].copy()))[0])
    close(both[:, H:], hs_bw[::-1])  # h^bw_t has read x_T..x_t
    close(padded[:L], cut)
    np.testing.assert_array_equal(padded[L:], 0.0)


def test_init_model_dtype_sets_every_parameter():
    model = jax.jit(lambda: rnnjax.init_model(cells.lstm(), jax.random.PRNGKey(0), D, H, O, dtype=jnp.bfloat16))()
    assert {a.dtype for a in jax.tree.leaves(model)} == {jnp.dtype(jnp.bfloat16)}  # one program, not ~35 eager


def test_a_carry_of_another_dtype_is_one_clear_error():
    cell = cells.vanilla("tanh")  # float32 parameters
    p = numpy_like(lambda k: cell.init(k, D, H), 0)
    assert {a.dtype for a in jax.tree.leaves(p)} == {jnp.dtype(jnp.float32)}
    xs, int_carry = jax.device_put((np.zeros((T, D), np.float32), np.zeros(H, np.int32)))  # no eager programs
    with pytest.raises(ValueError, match=r"took int32\[4\], returned float32\[4\]"):
        rnnjax.unroll(cell, p, xs, int_carry)
    with pytest.raises(ValueError, match=r"length must be an integer scalar"):
        rnnjax.unroll(cell, p, xs, length=2.5)
    with pytest.raises(ValueError, match=r"step must return a carry like the one it takes"):
        rnnjax.lyapunov_of(rnnjax.cell_step(cell, p), int_carry, xs)
