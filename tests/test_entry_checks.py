"""The library refuses bad input at its entry points in the user's terms (names, shapes, dtypes), before
any ``lax.scan`` or ``dot_general`` error from inside JAX can appear."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax.bptt import loss_and_grad
from rnnjax.cells import init_recurrent, init_rnn
from rnnjax.forward import rnn_forward
from rnnjax.train import train

KEY = jax.random.PRNGKey(0)
P = jax.jit(init_rnn, static_argnums=(1, 2, 3))(KEY, 3, 8, 2)  # one program, not ~15 eager ones
XS = jax.device_put(np.ones((5, 3), np.float32))


def test_plain_lists_are_refused_by_name():
    with pytest.raises(ValueError, match=r"xs must be an array \(jax.numpy or NumPy\), got list"):
        rnn_forward(P, [[0.0, 1.0, 2.0]] * 5)
    with pytest.raises(ValueError, match=r"params.W_hh must be an array.*got list"):
        rnn_forward(P._replace(W_hh=np.eye(8).tolist()), XS)
    with pytest.raises(ValueError, match="targets must be an array"):
        loss_and_grad(P, XS, [0, 1, 0, 1, 0], loss="xent")


def test_mismatched_parameter_shapes_are_named():
    bad = P._replace(W_hh=jnp.zeros((8, 9)), W_ho=jnp.zeros((7, 2)))
    with pytest.raises(ValueError) as err:
        rnn_forward(bad, XS)
    msg = str(err.value)
    assert "W_hh (8, 9) (want (8, 8))" in msg and "W_ho (7, 2) (want (8, 2))" in msg and "W_xh (3, 8)" in msg


def test_mixed_dtypes_are_refused(x64):
    with pytest.raises(ValueError, match="xs is float64 but the parameters are float32"):
        rnn_forward(P, jnp.ones((5, 3), jnp.float64))
    with pytest.raises(ValueError, match="the parameters mix dtypes.*W_xh float64.*W_hh float32"):
        rnn_forward(P._replace(W_xh=P.W_xh.astype(jnp.float64)), XS)


def test_class_labels_outside_the_outputs_are_refused():
    ys = jnp.array([0, 1, 5, 1, 0])  # O = 2: label 5 gave loss -0.0 (hand BPTT) or NaN (autograd) before
    with pytest.raises(ValueError, match=r"class label 5 at index \(2,\), outside 0..1 \(the output size O = 2\)"):
        loss_and_grad(P, XS, ys, loss="xent")
    items = jnp.zeros((3, 5), jnp.int32).at[2, 4].set(-1)  # only a later item is bad: every item is checked
    with pytest.raises(ValueError, match=r"class label -1 at index \(2, 4\)"):
        train(P, jnp.ones((3, 5, 3)), items, loss="xent", num_steps=2, learning_rate=0.1)


@pytest.mark.parametrize("lr,match", [(1e-50, "rounds to 0.0 in float32"), (1e39, "rounds to inf in float32"),
                                      (float("inf"), "finite and > 0"),
                                      (float("nan"), "learning_rate must be > 0, got nan")])
def test_learning_rates_lost_in_the_parameters_dtype_are_refused(lr, match):
    with pytest.raises(ValueError, match=match):
        train(P, jnp.ones((1, 5, 3)), jnp.zeros((1, 5), jnp.int32), loss="xent", num_steps=2, learning_rate=lr)


@pytest.mark.parametrize("rho", [0.0, -1.0, float("inf"), float("nan"), np.array([1.0, np.inf]),
                                 jnp.array([0.5, -0.5])])
def test_rho_must_be_finite_and_positive_everywhere(rho):
    with pytest.raises(ValueError, match="rho must be finite and > 0 everywhere"):
        init_rnn(KEY, 3, 8, 2, rho=rho)
    for kind in ("gaussian", "spectral", "orthogonal", "identity"):
        with pytest.raises(ValueError, match="rho must be finite"):
            init_recurrent(KEY, 4, rho=rho, kind=kind)


def test_a_traced_rho_still_sweeps():
    W = jax.vmap(lambda r: init_recurrent(KEY, 4, rho=r, kind="identity"))(jnp.array([0.5, 2.0]))
    np.testing.assert_allclose(np.asarray(W)[:, 0, 0], [0.5, 2.0])
