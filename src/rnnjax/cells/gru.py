"""The GRU cell (Cho et al. 2014), in the form of PyTorch's ``torch.nn.GRU``.

Row-vector convention as report §1.2. With ``u_t = x_t W_xh + b_xh`` and ``v_t = h_{t-1} W_hh + b_hh``,
each split into ``[r | z | n]`` blocks of H::

    r_t = sigma(u^r_t + v^r_t)                  reset gate
    z_t = sigma(u^z_t + v^z_t)                  update gate
    n_t = tanh (u^n_t + r_t * v^n_t)            candidate (b_hn inside the reset product)
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}       hidden state

The input and hidden biases are kept apart because b_hn sits inside the reset product. The carry
is h (H,). A model is ``ModelParams(GRUParams, Readout)`` (:func:`rnnjax.init_model`).

Reference: Cho et al. (2014), EMNLP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax._checks import check_choice
from rnnjax.cells.base import Cell, identity
from rnnjax.cells.init import RECURRENT_INITS, gate_blocks, scaled_normal


class GRUParams(NamedTuple):
    """The GRU cell's parameters (a PyTree). Gate blocks ``[r|z|n]``; the read-out is :class:`rnnjax.Readout`."""

    W_xh: jax.Array  # (D, 3H) input -> gates
    W_hh: jax.Array  # (H, 3H) hidden -> gates
    b_xh: jax.Array  # (3H,) input-side biases
    b_hh: jax.Array  # (3H,) hidden-side biases


@dataclass(frozen=True)
class _Init:
    recurrent_init: str
    dtype: object

    def __call__(self, key, input_size, hidden_size) -> GRUParams:
        H = hidden_size
        k_xh, k_hh, _ = jax.random.split(key, 3)  # the third key is the read-out's (rnnjax.init_model)
        return GRUParams(
            W_xh=scaled_normal(k_xh, (input_size, 3 * H), input_size, self.dtype),
            W_hh=gate_blocks(k_hh, H, 3, self.recurrent_init, self.dtype),
            b_xh=jnp.zeros((3 * H,), self.dtype),
            b_hh=jnp.zeros((3 * H,), self.dtype),
        )


def _update(u: jax.Array, h_prev: jax.Array, params) -> jax.Array:
    """h_t from the input terms ``u = x_t W_xh + b_xh`` (..., 3H) and h_{t-1}."""
    xr, xz, xn = jnp.split(u, 3, axis=-1)  # u_t = x_t W_xh + b_xh
    hr, hz, hn = jnp.split(h_prev @ params.W_hh + params.b_hh, 3, axis=-1)  # v_t = h_{t-1} W_hh + b_hh
    r = jax.nn.sigmoid(xr + hr)  # r_t = sigma(u^r_t + v^r_t)
    z = jax.nn.sigmoid(xz + hz)  # z_t = sigma(u^z_t + v^z_t)
    n = jnp.tanh(xn + r * hn)  # n_t = tanh(u^n_t + r_t * v^n_t)
    return (1.0 - z) * n + z * h_prev  # h_t = (1 - z_t) * n_t + z_t * h_{t-1}


def gru_cell(params, h_prev: jax.Array, x: jax.Array) -> jax.Array:
    """One GRU step ``h_{t-1} (H,), x_t (D,) -> h_t (H,)``; ``params`` needs W_xh, W_hh, b_xh, b_hh."""
    return _update(x @ params.W_xh + params.b_xh, h_prev, params)


def _initial_carry(params) -> jax.Array:
    return jnp.zeros(params.W_hh.shape[:1], params.W_hh.dtype)  # h_0 = 0


def gru(*, recurrent_init: str = "orthogonal", dtype=jnp.float32) -> Cell:
    """The GRU as a :class:`rnnjax.Cell`: params :class:`GRUParams`, carry h (H,).

    ``init`` draws W_xh ~ N(0, std 1/sqrt(D)), per-gate W_hh blocks from :func:`rnnjax.init_recurrent`
    (default orthogonal) and zero biases. Equal options give equal cells (one compiled program).

    No whole-sequence path: hoisting the input terms x_t W_xh + b_xh out of the scan was measured slower
    on CPU than the scan of this step, vmapped over a batch, at the adding problem's D = 2 (106 against
    81 us a sequence, T = 100, H = 32, B = 32) and only 9% faster at D = 27 (``benchmarks/bench_cells.py``).
    """
    check_choice("recurrent_init", recurrent_init, RECURRENT_INITS)
    return Cell(_Init(recurrent_init, jnp.dtype(dtype)), _initial_carry, gru_cell, identity)
