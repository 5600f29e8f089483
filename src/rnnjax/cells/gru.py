"""The GRU cell (Cho et al. 2014), in the form of PyTorch's ``torch.nn.GRU``.

Row-vector convention as report §1.2. With ``u_t = x_t W_xh + b_xh`` and ``v_t = h_{t-1} W_hh + b_hh``,
each split into ``[r | z | n]`` blocks of H::

    r_t = sigma(u^r_t + v^r_t)                  reset gate
    z_t = sigma(u^z_t + v^z_t)                  update gate
    n_t = tanh (u^n_t + r_t * v^n_t)            candidate (b_hn inside the reset product)
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}       hidden state

The input and hidden biases are kept apart because b_hn sits inside the reset product. The carry
is h (H,). :class:`GRUParams` is the whole model with a linear read-out.

Reference: Cho et al. (2014), EMNLP.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax._checks import check_choice, check_sizes
from rnnjax.cells.base import Cell, identity
from rnnjax.cells.init import RECURRENT_INITS, gate_blocks, scaled_normal


class GRUCellParams(NamedTuple):
    """Parameters of the GRU cell alone (a PyTree). Gate blocks ``[r|z|n]``."""

    W_xh: jax.Array  # (D, 3H) input -> gates
    W_hh: jax.Array  # (H, 3H) hidden -> gates
    b_xh: jax.Array  # (3H,) input-side biases
    b_hh: jax.Array  # (3H,) hidden-side biases


class GRUParams(NamedTuple):
    """A one-layer GRU with a linear read-out y_t = h_t W_ho + b_o (a PyTree). Gate blocks ``[r|z|n]``."""

    W_xh: jax.Array  # (D, 3H) input -> gates
    W_hh: jax.Array  # (H, 3H) hidden -> gates
    b_xh: jax.Array  # (3H,) input-side biases
    b_hh: jax.Array  # (3H,) hidden-side biases
    W_ho: jax.Array  # (H, O) hidden -> output
    b_o: jax.Array  # (O,)


def _init_cell(key, input_size, hidden_size, *, recurrent_init, dtype) -> GRUCellParams:
    H = hidden_size
    k_xh, k_hh, _ = jax.random.split(key, 3)  # the third key is the read-out's (rnnjax.init_model)
    return GRUCellParams(
        W_xh=scaled_normal(k_xh, (input_size, 3 * H), input_size, dtype),
        W_hh=gate_blocks(k_hh, H, 3, recurrent_init, dtype),
        b_xh=jnp.zeros((3 * H,), dtype),
        b_hh=jnp.zeros((3 * H,), dtype),
    )


def gru_cell(params, h_prev: jax.Array, x: jax.Array) -> jax.Array:
    """One GRU step ``h_{t-1} (H,), x_t (D,) -> h_t (H,)``; ``params`` needs W_xh, W_hh, b_xh, b_hh."""
    xr, xz, xn = jnp.split(x @ params.W_xh + params.b_xh, 3, axis=-1)  # u_t = x_t W_xh + b_xh
    hr, hz, hn = jnp.split(h_prev @ params.W_hh + params.b_hh, 3, axis=-1)  # v_t = h_{t-1} W_hh + b_hh
    r = jax.nn.sigmoid(xr + hr)  # r_t = sigma(u^r_t + v^r_t)
    z = jax.nn.sigmoid(xz + hz)  # z_t = sigma(u^z_t + v^z_t)
    n = jnp.tanh(xn + r * hn)  # n_t = tanh(u^n_t + r_t * v^n_t)
    return (1.0 - z) * n + z * h_prev  # h_t = (1 - z_t) * n_t + z_t * h_{t-1}


def gru(*, recurrent_init: str = "orthogonal", dtype=jnp.float32) -> Cell:
    """The GRU as a :class:`rnnjax.Cell`: params :class:`GRUCellParams`, carry h (H,).

    ``init`` draws W_xh ~ N(0, std 1/sqrt(D)), per-gate W_hh blocks from :func:`rnnjax.init_recurrent`
    (default orthogonal) and zero biases.
    """
    check_choice("recurrent_init", recurrent_init, RECURRENT_INITS)
    init = partial(_init_cell, recurrent_init=recurrent_init, dtype=dtype)

    def initial_carry(params):
        return jnp.zeros(params.W_hh.shape[:1], params.W_hh.dtype)  # h_0 = 0

    return Cell(init, initial_carry, gru_cell, identity)


def init_gru(key: jax.Array, input_size: int, hidden_size: int, output_size: int, *,
             recurrent_init: str = "orthogonal", dtype=jnp.float32) -> GRUParams:
    """Seeded initial :class:`GRUParams`: the cell of :func:`gru`, a read-out W_ho ~ N(0, std 1/sqrt(H)), b_o = 0."""
    check_sizes(input_size=input_size, hidden_size=hidden_size, output_size=output_size)
    check_choice("recurrent_init", recurrent_init, RECURRENT_INITS)
    return _init_gru(key, input_size, hidden_size, output_size, recurrent_init, dtype)


@partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _init_gru(key, input_size, hidden_size, output_size, recurrent_init, dtype):
    cell = _init_cell(key, input_size, hidden_size, recurrent_init=recurrent_init, dtype=dtype)
    k_ho = jax.random.split(key, 3)[2]
    W_ho = scaled_normal(k_ho, (hidden_size, output_size), hidden_size, dtype)
    return GRUParams(*cell, W_ho=W_ho, b_o=jnp.zeros((output_size,), dtype))
