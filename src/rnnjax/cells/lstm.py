"""The LSTM cell (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

Row-vector convention as report §1.2; the four gate blocks are stacked along the last axis of one
matrix in PyTorch's order ``[i | f | g | o]``, so one matmul computes every gate. With
``z_t = x_t W_xh + b_h + h_{t-1} W_hh`` split into four blocks of H::

    i_t = sigma(z^i_t)                  input gate
    f_t = sigma(z^f_t)                  forget gate
    g_t = tanh (z^g_t)                  candidate cell
    o_t = sigma(z^o_t)                  output gate
    c_t = f_t * c_{t-1} + i_t * g_t     cell state
    h_t = o_t * tanh(c_t)               hidden state

The carry is :class:`LSTMCarry` ``(h, c)`` (a plain tuple works too); the read-out sees h. A model
is ``ModelParams(LSTMParams, Readout)`` (:func:`rnnjax.init_model`), the layout of ``torch.nn.LSTM``
+ ``nn.Linear``.

References: Hochreiter & Schmidhuber (1997), Neural Computation 9(8); Gers, Schmidhuber & Cummins
(2000), Neural Computation 12(10); Jozefowicz, Zaremba & Sutskever (2015), ICML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax._checks import check_choice
from rnnjax.cells.base import Cell
from rnnjax.cells.init import RECURRENT_INITS, gate_blocks, scaled_normal


class LSTMParams(NamedTuple):
    """The LSTM cell's parameters (a PyTree). Gate blocks ``[i|f|g|o]``; the read-out is :class:`rnnjax.Readout`."""

    W_xh: jax.Array  # (D, 4H) input -> gates
    W_hh: jax.Array  # (H, 4H) hidden -> gates (row convention: h_{t-1} W_hh)
    b_h: jax.Array  # (4H,) gate biases (PyTorch's bias_ih + bias_hh)


class LSTMCarry(NamedTuple):
    """The LSTM's recurrent carry: hidden state ``h`` and cell state ``c``, each (H,). A plain ``(h, c)`` works too."""

    h: jax.Array
    c: jax.Array


@dataclass(frozen=True)
class _Init:
    forget_bias: float
    recurrent_init: str
    dtype: object

    def __call__(self, key, input_size, hidden_size) -> LSTMParams:
        H = hidden_size
        k_xh, k_hh, _ = jax.random.split(key, 3)  # the third key is the read-out's (rnnjax.init_model)
        return LSTMParams(
            W_xh=scaled_normal(k_xh, (input_size, 4 * H), input_size, self.dtype),
            W_hh=gate_blocks(k_hh, H, 4, self.recurrent_init, self.dtype),
            b_h=jnp.zeros((4 * H,), self.dtype).at[H:2 * H].set(self.forget_bias),  # b_f (Gers et al. 2000)
        )


def _like(carry, h, c):
    """``(h, c)`` in the carry's own container: an :class:`LSTMCarry`, a tuple or a list."""
    return jax.tree.unflatten(jax.tree.structure(carry), [h, c])


def _gates(z: jax.Array, c_prev: jax.Array):
    """``(h_t, c_t)`` from the gates' pre-activations ``z (..., 4H)`` and ``c_{t-1}``."""
    zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
    i, f, o = jax.nn.sigmoid(zi), jax.nn.sigmoid(zf), jax.nn.sigmoid(zo)  # i_t, f_t, o_t = sigma(.)
    g = jnp.tanh(zg)  # g_t = tanh(x_t W_xg + h_{t-1} W_hg + b_g)
    c = f * c_prev + i * g  # c_t = f_t * c_{t-1} + i_t * g_t
    return o * jnp.tanh(c), c  # h_t = o_t * tanh(c_t)


def lstm_cell(params, carry, x: jax.Array):
    """One LSTM step ``(h_{t-1}, c_{t-1}), x_t -> (h_t, c_t)``; ``params`` needs W_xh, W_hh, b_h."""
    h_prev, c_prev = carry
    z = x @ params.W_xh + params.b_h + h_prev @ params.W_hh  # all four gates' pre-activations (..., 4H)
    return _like(carry, *_gates(z, c_prev))


def _initial_carry(params) -> LSTMCarry:
    zeros = jnp.zeros(params.W_hh.shape[:1], params.W_hh.dtype)
    return LSTMCarry(zeros, zeros)  # (h_0, c_0) = (0, 0)


def _hidden(carry) -> jax.Array:
    return carry[0]  # h of (h, c)


def lstm(*, forget_bias: float = 1.0, recurrent_init: str = "orthogonal", dtype=jnp.float32) -> Cell:
    """The LSTM as a :class:`rnnjax.Cell`: params :class:`LSTMParams`, carry :class:`LSTMCarry` (or a plain tuple).

    ``init`` draws W_xh ~ N(0, std 1/sqrt(D)) (LeCun normal), each gate's block of W_hh from
    :func:`rnnjax.init_recurrent` with ``recurrent_init`` (default orthogonal, Saxe et al. 2014),
    and zero biases except the forget gate's, b_f = ``forget_bias``: the default 1.0 starts with
    f_t ~ sigma(1) ~ 0.73, so the cell state is remembered rather than wiped (Gers et al. 2000;
    Jozefowicz et al. 2015). Equal options give equal cells (one compiled program).

    No whole-sequence path: hoisting the input projections x_t W_xh + b_h of every step out of the
    scan (as cuDNN does) was measured slower on CPU than the scan of this step, vmapped over a batch
    (``benchmarks/bench_cells.py``, 2026-12-06: 139 against 110 us a sequence at T = 100, D = 2, H = 32,
    B = 32; 201 against 153 at T = 50, D = 27, H = 50).
    """
    check_choice("recurrent_init", recurrent_init, RECURRENT_INITS)
    return Cell(_Init(float(forget_bias), recurrent_init, jnp.dtype(dtype)), _initial_carry, lstm_cell, _hidden)
