"""The vanilla RNN cell of report §1.2, in the report's row-vector convention.

    a_t = x_t W_xh + h_{t-1} W_hh + b_h          (report §1.2)
    h_t = phi_h(a_t)                              (report §1.2)
    o_t = h_t W_ho + b_o                          (report §1.2, phi_o = identity; losses add softmax)

Shapes: x_t (D,), h_t (H,), W_xh (D, H), W_hh (H, H), b_h (H,), W_ho (H, O), b_o (O,).

Two views of the same model: :class:`RNNParams` is the report's whole model (cell and read-out,
five fields), used by the hand BPTT of report §2.2 (:mod:`rnnjax.bptt`); :func:`vanilla` is the
cell alone behind the :class:`rnnjax.Cell` protocol, with :class:`VanillaParams` (its step also
accepts an :class:`RNNParams`, whose read-out fields it ignores).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax._checks import check_positive_int
from rnnjax.activations import get_activation
from rnnjax.cells.base import Cell, identity
from rnnjax.cells.init import init_recurrent


class VanillaParams(NamedTuple):
    """Parameters of the vanilla cell alone (a PyTree); the read-out lives in :class:`rnnjax.Readout`."""

    W_xh: jax.Array  # (D, H) input -> hidden
    W_hh: jax.Array  # (H, H) hidden -> hidden (row convention: h_{t-1} W_hh)
    b_h: jax.Array  # (H,)


class RNNParams(NamedTuple):
    """Parameters of a one-layer vanilla RNN with a linear read-out (a PyTree)."""

    W_xh: jax.Array  # (D, H) input -> hidden
    W_hh: jax.Array  # (H, H) hidden -> hidden (row convention: h_{t-1} W_hh)
    b_h: jax.Array  # (H,)
    W_ho: jax.Array  # (H, O) hidden -> output
    b_o: jax.Array  # (O,)


def init_rnn(key: jax.Array, input_size: int, hidden_size: int, output_size: int, *, rho=1.0,
             recurrent_init: str = "gaussian", input_std=None, output_std=None,
             dtype=jnp.float32) -> RNNParams:
    """Seeded initial :class:`RNNParams`.

    W_hh follows ``recurrent_init`` (see :func:`init_recurrent`). Input and output weights default
    to LeCun-normal scales, W_xh ~ N(0, std 1/sqrt(D)) and W_ho ~ N(0, std 1/sqrt(H)), which keep
    x_t W_xh and h_t W_ho at unit-order variance; ``input_std``/``output_std`` override them.
    Biases start at zero. ``rho`` may be a traced scalar, so ``jax.vmap`` sweeps over it.
    """
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                        ("output_size", output_size)):
        check_positive_int(name, value)
    k_xh, k_hh, k_ho = jax.random.split(key, 3)
    in_std = 1.0 / jnp.sqrt(input_size) if input_std is None else input_std
    out_std = 1.0 / jnp.sqrt(hidden_size) if output_std is None else output_std
    return RNNParams(
        W_xh=(in_std * jax.random.normal(k_xh, (input_size, hidden_size), dtype)).astype(dtype),
        W_hh=init_recurrent(k_hh, hidden_size, rho=rho, kind=recurrent_init, dtype=dtype),
        b_h=jnp.zeros((hidden_size,), dtype),
        W_ho=(out_std * jax.random.normal(k_ho, (hidden_size, output_size), dtype)).astype(dtype),
        b_o=jnp.zeros((output_size,), dtype),
    )


def rnn_cell(params: RNNParams, h_prev: jax.Array, x: jax.Array, *, activation: str = "tanh"):
    """One step: returns ``(h_t, a_t)`` for ``h_prev (..., H)`` and ``x (..., D)``."""
    a = x @ params.W_xh + h_prev @ params.W_hh + params.b_h  # a_t = x_t W_xh + h_{t-1} W_hh + b_h (§1.2)
    return get_activation(activation).phi(a), a  # h_t = phi_h(a_t) (§1.2)


def vanilla(activation: str = "tanh", *, rho=1.0, recurrent_init: str = "gaussian", input_std=None,
            dtype=jnp.float32) -> Cell:
    """The vanilla RNN cell of report §1.2 as a :class:`rnnjax.Cell`; carry h (H,), params :class:`VanillaParams`.

    ``init`` draws W_xh ~ N(0, std ``input_std``, default 1/sqrt(D)), W_hh from
    :func:`rnnjax.init_recurrent` (``recurrent_init``, scaled by ``rho``) and b_h = 0, exactly as
    :func:`init_rnn` does from the same key (the key's third split is the read-out's, see
    :func:`rnnjax.init_model`).
    """
    phi = get_activation(activation).phi

    def init(key, input_size, hidden_size):
        p = init_rnn(key, input_size, hidden_size, 1, rho=rho, recurrent_init=recurrent_init,
                     input_std=input_std, dtype=dtype)
        return VanillaParams(p.W_xh, p.W_hh, p.b_h)

    def initial_carry(params):
        return jnp.zeros(params.b_h.shape, params.W_hh.dtype)  # h_0 = 0

    def step(params, h, x):
        return phi(x @ params.W_xh + params.b_h + h @ params.W_hh)  # h_t = phi(x_t W_xh + b_h + h_{t-1} W_hh) (§1.2)

    return Cell(init, initial_carry, step, identity)
