"""rnnjax.linalg.spectral_norm_record: ||dL/dW||_2 of a weight a user names, recorded by warm-started Lanczos
inside rnnjax.train.run_steps, against NumPy's exact 2-norm of the same step's gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnnjax
from rnnjax.linalg import NormRecord, spectral_norm_record
from rnnjax.train import run_steps

CELL = rnnjax.cells.vanilla("tanh")
LOSS = rnnjax.make_loss(CELL, "mse_last")


def test_the_record_of_a_named_weight_equals_the_exact_norm():
    key = jax.random.PRNGKey(0)
    model = rnnjax.init_model(CELL, key, 3, 6, 2)
    rng = np.random.default_rng(1)  # test data by NumPy: transfers, not a compiled random program per shape
    xs = jnp.asarray(rng.standard_normal((3, 4, 7, 3), np.float32))  # N = 3 batches of 4 sequences, T = 7
    ys = jnp.asarray(rng.standard_normal((3, 4, 2), np.float32))
    select = lambda g: g.cell.W_hh  # the weight the user names
    record, init_state = spectral_norm_record(select)

    def both(params, grads, state):  # the recorder's values, and the matrix itself to check them against
        values, state = record(params, grads, state)
        return (values, select(grads)), state

    def value_and_grad(params, batch, carry):
        value, grads = jax.value_and_grad(LOSS)(params, batch)
        return value, grads, carry

    _, history = jax.jit(lambda m: run_steps(value_and_grad, m, (xs, ys), optax.sgd(0.5), num_steps=6,
                                             record=both, record_state=init_state(m)))(model)
    norms, G = history.extra
    assert isinstance(norms, NormRecord) and norms.spec.shape == (6,)
    exact = np.array([np.linalg.norm(np.asarray(g, np.float64), 2) for g in G])
    np.testing.assert_allclose(norms.spec, exact, rtol=2e-5)  # 12 Lanczos steps on a 6x6 matrix: exact
    np.testing.assert_allclose(norms.fro, np.linalg.norm(np.asarray(G, np.float64), axis=(1, 2)), rtol=1e-5)
    assert len(np.unique(np.round(exact, 6))) == 6  # the gradient changed from step to step


def test_a_selection_that_is_not_a_matrix_is_refused():
    _, init_state = spectral_norm_record(lambda g: g.cell.b_h)
    with pytest.raises(ValueError, match=r"select must pick a matrix \(m, n\), got shape \(6,\)"):
        init_state(rnnjax.init_model(CELL, jax.random.PRNGKey(0), 3, 6, 2))
    v0 = spectral_norm_record(lambda g: g.readout.W_ho)[1](rnnjax.init_model(CELL, jax.random.PRNGKey(0), 3, 6, 2))
    np.testing.assert_allclose(v0, np.full(2, 2 ** -0.5))  # the start vector: (1, ..., 1) / sqrt(n)
