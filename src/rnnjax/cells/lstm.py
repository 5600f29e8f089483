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

The carry is :class:`LSTMCarry` ``(h, c)``; the read-out sees h. :class:`LSTMParams` is the whole
model with a linear read-out (the layout of ``torch.nn.LSTM`` + ``nn.Linear``).

References: Hochreiter & Schmidhuber (1997), Neural Computation 9(8); Gers, Schmidhuber & Cummins
(2000), Neural Computation 12(10); Jozefowicz, Zaremba & Sutskever (2015), ICML.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax._checks import check_choice, check_sizes
from rnnjax.cells.base import Cell
from rnnjax.cells.init import RECURRENT_INITS, gate_blocks, scaled_normal


class LSTMCellParams(NamedTuple):
    """Parameters of the LSTM cell alone (a PyTree). Gate blocks ``[i|f|g|o]``."""

    W_xh: jax.Array  # (D, 4H) input -> gates
    W_hh: jax.Array  # (H, 4H) hidden -> gates (row convention: h_{t-1} W_hh)
    b_h: jax.Array  # (4H,) gate biases (PyTorch's bias_ih + bias_hh)


class LSTMParams(NamedTuple):
    """A one-layer LSTM with a linear read-out y_t = h_t W_ho + b_o (a PyTree). Gate blocks ``[i|f|g|o]``."""

    W_xh: jax.Array  # (D, 4H) input -> gates
    W_hh: jax.Array  # (H, 4H) hidden -> gates
    b_h: jax.Array  # (4H,) gate biases
    W_ho: jax.Array  # (H, O) hidden -> output
    b_o: jax.Array  # (O,)


class LSTMCarry(NamedTuple):
    """The LSTM's recurrent carry: hidden state ``h`` and cell state ``c``, each (H,)."""

    h: jax.Array
    c: jax.Array


def _init_cell(key, input_size, hidden_size, *, forget_bias, recurrent_init, dtype) -> LSTMCellParams:
    H = hidden_size
    k_xh, k_hh, _ = jax.random.split(key, 3)  # the third key is the read-out's (rnnjax.init_model)
    return LSTMCellParams(
        W_xh=scaled_normal(k_xh, (input_size, 4 * H), input_size, dtype),
        W_hh=gate_blocks(k_hh, H, 4, recurrent_init, dtype),
        b_h=jnp.zeros((4 * H,), dtype).at[H:2 * H].set(forget_bias),  # b_f = forget_bias (Gers et al. 2000)
    )


def lstm_cell(params, carry: LSTMCarry, x: jax.Array) -> LSTMCarry:
    """One LSTM step ``(h_{t-1}, c_{t-1}), x_t -> (h_t, c_t)``; ``params`` needs W_xh, W_hh, b_h."""
    z = x @ params.W_xh + params.b_h + carry.h @ params.W_hh  # all four gates' pre-activations (..., 4H)
    zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
    i, f, o = jax.nn.sigmoid(zi), jax.nn.sigmoid(zf), jax.nn.sigmoid(zo)  # i_t, f_t, o_t = sigma(.)
    g = jnp.tanh(zg)  # g_t = tanh(x_t W_xg + h_{t-1} W_hg + b_g)
    c = f * carry.c + i * g  # c_t = f_t * c_{t-1} + i_t * g_t
    return LSTMCarry(o * jnp.tanh(c), c)  # h_t = o_t * tanh(c_t)


def lstm(*, forget_bias: float = 1.0, recurrent_init: str = "orthogonal", dtype=jnp.float32) -> Cell:
    """The LSTM as a :class:`rnnjax.Cell`: params :class:`LSTMCellParams`, carry :class:`LSTMCarry`.

    ``init`` draws W_xh ~ N(0, std 1/sqrt(D)) (LeCun normal), each gate's block of W_hh from
    :func:`rnnjax.init_recurrent` with ``recurrent_init`` (default orthogonal, Saxe et al. 2014),
    and zero biases except the forget gate's, b_f = ``forget_bias``: the default 1.0 starts with
    f_t ~ sigma(1) ~ 0.73, so the cell state is remembered rather than wiped (Gers et al. 2000;
    Jozefowicz et al. 2015).
    """
    check_choice("recurrent_init", recurrent_init, RECURRENT_INITS)
    init = partial(_init_cell, forget_bias=forget_bias, recurrent_init=recurrent_init, dtype=dtype)

    def initial_carry(params):
        zeros = jnp.zeros(params.W_hh.shape[:1], params.W_hh.dtype)
        return LSTMCarry(zeros, zeros)  # (h_0, c_0) = (0, 0)

    return Cell(init, initial_carry, lstm_cell, lambda carry: carry.h)


def init_lstm(key: jax.Array, input_size: int, hidden_size: int, output_size: int, *,
              forget_bias: float = 1.0, recurrent_init: str = "orthogonal", dtype=jnp.float32) -> LSTMParams:
    """Seeded initial :class:`LSTMParams`: the cell of :func:`lstm`, a read-out W_ho ~ N(0, std 1/sqrt(H)), b_o = 0."""
    check_sizes(input_size=input_size, hidden_size=hidden_size, output_size=output_size)
    check_choice("recurrent_init", recurrent_init, RECURRENT_INITS)
    return _init_lstm(key, forget_bias, input_size, hidden_size, output_size, recurrent_init, dtype)


@partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _init_lstm(key, forget_bias, input_size, hidden_size, output_size, recurrent_init, dtype):
    cell = _init_cell(key, input_size, hidden_size, forget_bias=forget_bias, recurrent_init=recurrent_init,
                      dtype=dtype)
    k_ho = jax.random.split(key, 3)[2]
    W_ho = scaled_normal(k_ho, (hidden_size, output_size), hidden_size, dtype)
    return LSTMParams(*cell, W_ho=W_ho, b_o=jnp.zeros((output_size,), dtype))
