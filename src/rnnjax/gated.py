"""Gated recurrent cells -- LSTM and GRU -- and cell-generic losses, gradients and training.

Row-vector convention as the vanilla RNN of report §1.2 (``x_t W``, not ``W x_t``). The gate
blocks are stacked along the last axis of one weight matrix, in PyTorch's order, so that one
matmul computes every gate.

LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000). With
``z_t = x_t W_xh + h_{t-1} W_hh + b_h`` split into four blocks ``[z^i | z^f | z^g | z^o]`` of H::

    i_t = sigma(z^i_t)                  input gate
    f_t = sigma(z^f_t)                  forget gate
    g_t = tanh (z^g_t)                  candidate cell
    o_t = sigma(z^o_t)                  output gate
    c_t = f_t * c_{t-1} + i_t * g_t     cell state
    h_t = o_t * tanh(c_t)               hidden state
    y_t = h_t W_ho + b_o                linear read-out (as report §1.2)

GRU (Cho et al. 2014, in the form of PyTorch's ``torch.nn.GRU``). With ``u_t = x_t W_xh + b_xh`` and
``v_t = h_{t-1} W_hh + b_hh``, each split into ``[r | z | n]`` blocks::

    r_t = sigma(u^r_t + v^r_t)                  reset gate
    z_t = sigma(u^z_t + v^z_t)                  update gate
    n_t = tanh (u^n_t + r_t * v^n_t)            candidate (b_hn inside the reset product)
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}       hidden state
    y_t = h_t W_ho + b_o                        linear read-out

References: Hochreiter & Schmidhuber (1997), Neural Computation 9(8); Gers, Schmidhuber & Cummins
(2000), Neural Computation 12(10); Cho et al. (2014), EMNLP; Jozefowicz, Zaremba & Sutskever (2015), ICML.

The cell-generic functions (:func:`cell_forward`, :func:`cell_loss_and_grad`, :func:`train_cell`,
:func:`flat_step`) dispatch on the parameter type -- :class:`rnnjax.RNNParams`, :class:`LSTMParams`
or :class:`GRUParams` -- so one code path trains, differentiates and analyses every cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from rnnjax._checks import check_choice, check_positive_int
from rnnjax.analysis import log_lag_profile_of, states_of
from rnnjax.cells import RECURRENT_INITS, RNNParams, init_recurrent, init_rnn, rnn_cell
from rnnjax.forward import rnn_states
from rnnjax.losses import check_targets, get_loss
from rnnjax.train import make_optimizer, optimize

CELLS = ("rnn", "lstm", "gru")


# ----------------------------------------------------------------------------------------- LSTM


class LSTMParams(NamedTuple):
    """Parameters of a one-layer LSTM with a linear read-out (a PyTree). Gate blocks ``[i|f|g|o]``."""

    W_xh: jax.Array  # (D, 4H) input -> gates
    W_hh: jax.Array  # (H, 4H) hidden -> gates (row convention: h_{t-1} W_hh)
    b_h: jax.Array  # (4H,) gate biases (PyTorch's bias_ih + bias_hh)
    W_ho: jax.Array  # (H, O) hidden -> output
    b_o: jax.Array  # (O,)


class LSTMCarry(NamedTuple):
    """The LSTM's recurrent carry: hidden state ``h`` and cell state ``c``, each (..., H)."""

    h: jax.Array
    c: jax.Array


def _gate_blocks_recurrent(key, hidden_size, n_gates, kind, dtype):
    """(H, n_gates * H): one independent :func:`rnnjax.init_recurrent` matrix (rho = 1) per gate."""
    blocks = jax.vmap(lambda k: init_recurrent(k, hidden_size, rho=1.0, kind=kind, dtype=dtype))(
        jax.random.split(key, n_gates))  # (n_gates, H, H)
    return jnp.concatenate(list(blocks), axis=1)  # [W_h1 | W_h2 | ...]


def _check_sizes(input_size, hidden_size, output_size):
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                        ("output_size", output_size)):
        check_positive_int(name, value)


def init_lstm(key: jax.Array, input_size: int, hidden_size: int, output_size: int, *,
              forget_bias: float = 1.0, recurrent_init: str = "orthogonal", dtype=jnp.float32) -> LSTMParams:
    """Seeded initial :class:`LSTMParams`.

    W_xh ~ N(0, std 1/sqrt(D)) (LeCun normal), each gate's block of W_hh from
    :func:`rnnjax.init_recurrent` with ``recurrent_init`` (default orthogonal, Saxe et al. 2014),
    W_ho ~ N(0, std 1/sqrt(H)); biases zero except the forget gate's, ``b_f = forget_bias``.
    The default ``forget_bias=1.0`` starts with f_t ~ sigma(1) ~ 0.73, so the cell state is
    remembered rather than wiped at initialisation (Gers et al. 2000; Jozefowicz et al. 2015);
    pass ``forget_bias=0.0`` for the plain zero-bias initialisation.
    """
    _check_sizes(input_size, hidden_size, output_size)
    check_choice("recurrent_init", recurrent_init, RECURRENT_INITS)
    return _init_lstm(key, forget_bias, input_size, hidden_size, output_size, recurrent_init, dtype)


@partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _init_lstm(key, forget_bias, input_size, hidden_size, output_size, recurrent_init, dtype):
    H = hidden_size
    k_xh, k_hh, k_ho = jax.random.split(key, 3)
    b_h = jnp.zeros((4 * H,), dtype).at[H:2 * H].set(forget_bias)  # b_f = forget_bias (Gers et al. 2000)
    return LSTMParams(
        W_xh=(jax.random.normal(k_xh, (input_size, 4 * H), dtype) / jnp.sqrt(input_size)).astype(dtype),
        W_hh=_gate_blocks_recurrent(k_hh, H, 4, recurrent_init, dtype),
        b_h=b_h,
        W_ho=(jax.random.normal(k_ho, (H, output_size), dtype) / jnp.sqrt(H)).astype(dtype),
        b_o=jnp.zeros((output_size,), dtype),
    )


def _lstm_gates(z, c_prev):
    """Gate non-linearities and state update from the pre-activations z (..., 4H) = [i|f|g|o]."""
    zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
    i, f, o = jax.nn.sigmoid(zi), jax.nn.sigmoid(zf), jax.nn.sigmoid(zo)  # i_t, f_t, o_t = sigma(.)
    g = jnp.tanh(zg)  # g_t = tanh(x_t W_xg + h_{t-1} W_hg + b_g)
    c = f * c_prev + i * g  # c_t = f_t * c_{t-1} + i_t * g_t
    h = o * jnp.tanh(c)  # h_t = o_t * tanh(c_t)
    return LSTMCarry(h, c)


def lstm_cell(params: LSTMParams, carry: LSTMCarry, x: jax.Array) -> LSTMCarry:
    """One LSTM step: ``(h_{t-1}, c_{t-1}), x_t -> (h_t, c_t)``; shapes (..., H), x (..., D)."""
    z = x @ params.W_xh + carry.h @ params.W_hh + params.b_h  # all four gates' pre-activations
    return _lstm_gates(z, carry.c)


def _hidden_size(params) -> int:
    return params.W_hh.shape[0]


def lstm_initial_carry(params: LSTMParams, carry0=None) -> LSTMCarry:
    """``carry0`` as an :class:`LSTMCarry` (a pair ``(h0, c0)`` is accepted), or zeros (H,) when None."""
    H = _hidden_size(params)
    if carry0 is None:
        zeros = jnp.zeros((H,), params.W_hh.dtype)
        return LSTMCarry(zeros, zeros)
    if not isinstance(carry0, tuple) or len(carry0) != 2:
        raise ValueError("carry0 must be a pair (h0, c0) of arrays of shape (H,), "
                         f"H={H}; got {type(carry0).__name__}")
    h0, c0 = (jnp.asarray(a, params.W_hh.dtype) for a in carry0)
    if h0.shape[-1:] != (H,) or c0.shape != h0.shape:
        raise ValueError(f"carry0 = (h0, c0) must both have shape (H,) = ({H},); got {h0.shape} and {c0.shape}")
    return LSTMCarry(h0, c0)


def lstm_scan(params: LSTMParams, xs: jax.Array, carry0=None):
    """Run the LSTM over ``xs (T, D)``: returns ``(final carry, hs (T, H), cs (T, H))``."""
    xw = xs @ params.W_xh + params.b_h  # x_t W_xh + b_h for all t at once (T, 4H)

    def step(carry, xw_t):
        new = _lstm_gates(xw_t + carry.h @ params.W_hh, carry.c)  # lstm_cell with x_t W_xh + b_h precomputed
        return new, new

    final, (hs, cs) = lax.scan(step, lstm_initial_carry(params, carry0), xw)
    return final, hs, cs


def lstm_forward(params: LSTMParams, xs: jax.Array, carry0=None):
    """Run the LSTM over one sequence.

    Args:
      params: :class:`LSTMParams`.
      xs: inputs (T, D).
      carry0: initial ``(h0, c0)``, each (H,); zeros when None.

    Returns:
      ``(hs, outputs)``: hidden states h_1..h_T (T, H) and read-outs y_t = h_t W_ho + b_o (T, O).
    """
    _check_xs(params, xs)
    lstm_initial_carry(params, carry0)
    return _lstm_forward(params, xs, carry0)


@jax.jit
def _lstm_forward(params, xs, carry0):
    _, hs, _ = lstm_scan(params, xs, carry0)
    return hs, hs @ params.W_ho + params.b_o  # y_t = h_t W_ho + b_o


# ------------------------------------------------------------------------------------------ GRU


class GRUParams(NamedTuple):
    """Parameters of a one-layer GRU with a linear read-out (a PyTree). Gate blocks ``[r|z|n]``.

    The input and hidden biases are kept apart because b_hn sits inside the reset product
    r_t * (h_{t-1} W_hn + b_hn), as in PyTorch.
    """

    W_xh: jax.Array  # (D, 3H) input -> gates
    W_hh: jax.Array  # (H, 3H) hidden -> gates
    b_xh: jax.Array  # (3H,) input-side biases
    b_hh: jax.Array  # (3H,) hidden-side biases
    W_ho: jax.Array  # (H, O) hidden -> output
    b_o: jax.Array  # (O,)


def init_gru(key: jax.Array, input_size: int, hidden_size: int, output_size: int, *,
             recurrent_init: str = "orthogonal", dtype=jnp.float32) -> GRUParams:
    """Seeded initial :class:`GRUParams`: as :func:`init_lstm` (per-gate recurrent blocks), biases zero."""
    _check_sizes(input_size, hidden_size, output_size)
    check_choice("recurrent_init", recurrent_init, RECURRENT_INITS)
    return _init_gru(key, input_size, hidden_size, output_size, recurrent_init, dtype)


@partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _init_gru(key, input_size, hidden_size, output_size, recurrent_init, dtype):
    H = hidden_size
    k_xh, k_hh, k_ho = jax.random.split(key, 3)
    return GRUParams(
        W_xh=(jax.random.normal(k_xh, (input_size, 3 * H), dtype) / jnp.sqrt(input_size)).astype(dtype),
        W_hh=_gate_blocks_recurrent(k_hh, H, 3, recurrent_init, dtype),
        b_xh=jnp.zeros((3 * H,), dtype),
        b_hh=jnp.zeros((3 * H,), dtype),
        W_ho=(jax.random.normal(k_ho, (H, output_size), dtype) / jnp.sqrt(H)).astype(dtype),
        b_o=jnp.zeros((output_size,), dtype),
    )


def _gru_update(gx, h_prev, params: GRUParams):
    """h_t from the input-side pre-activations gx = x_t W_xh + b_xh (..., 3H) and h_{t-1}."""
    gh = h_prev @ params.W_hh + params.b_hh  # h_{t-1} W_hh + b_hh, all gates
    xr, xz, xn = jnp.split(gx, 3, axis=-1)
    hr, hz, hn = jnp.split(gh, 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)  # r_t = sigma(x_t W_xr + b_xr + h_{t-1} W_hr + b_hr)
    z = jax.nn.sigmoid(xz + hz)  # z_t = sigma(x_t W_xz + b_xz + h_{t-1} W_hz + b_hz)
    n = jnp.tanh(xn + r * hn)  # n_t = tanh(x_t W_xn + b_xn + r_t * (h_{t-1} W_hn + b_hn))
    return (1.0 - z) * n + z * h_prev  # h_t = (1 - z_t) * n_t + z_t * h_{t-1}


def gru_cell(params: GRUParams, h_prev: jax.Array, x: jax.Array) -> jax.Array:
    """One GRU step: ``h_{t-1} (..., H), x_t (..., D) -> h_t (..., H)``."""
    return _gru_update(x @ params.W_xh + params.b_xh, h_prev, params)


def _initial_h(params, h0):
    H = _hidden_size(params)
    if h0 is None:
        return jnp.zeros((H,), params.W_hh.dtype)
    h0 = jnp.asarray(h0, params.W_hh.dtype)
    if h0.shape[-1:] != (H,):
        raise ValueError(f"h0 must have shape (H,) = ({H},), got {tuple(h0.shape)}")
    return h0


def gru_scan(params: GRUParams, xs: jax.Array, h0=None):
    """Run the GRU over ``xs (T, D)``: returns ``(h_T, hs (T, H))``."""
    gx = xs @ params.W_xh + params.b_xh  # x_t W_xh + b_xh for all t at once (T, 3H)

    def step(h, gx_t):
        h = _gru_update(gx_t, h, params)
        return h, h

    return lax.scan(step, _initial_h(params, h0), gx)


def gru_forward(params: GRUParams, xs: jax.Array, h0=None):
    """Run the GRU over one sequence.

    Args:
      params: :class:`GRUParams`.
      xs: inputs (T, D).
      h0: initial hidden state (H,); zeros when None.

    Returns:
      ``(hs, outputs)``: hidden states h_1..h_T (T, H) and read-outs y_t = h_t W_ho + b_o (T, O).
    """
    _check_xs(params, xs)
    _initial_h(params, h0)
    return _gru_forward(params, xs, h0)


@jax.jit
def _gru_forward(params, xs, h0):
    _, hs = gru_scan(params, xs, h0)
    return hs, hs @ params.W_ho + params.b_o  # y_t = h_t W_ho + b_o


def _check_xs(params, xs, *, batched: bool = False):
    D = params.W_xh.shape[0]
    want = "(B, T, D)" if batched else "(T, D)"
    if xs.ndim != (3 if batched else 2) or xs.shape[-1] != D:
        raise ValueError(f"xs must have shape {want} with D={D} (the rows of W_xh), got shape {tuple(xs.shape)}")
    if xs.shape[-2] < 1:
        raise ValueError("xs must hold at least one time step (T >= 1)")


# ----------------------------------------------------------------------------- PyTorch's layout


def _torch_array(state_dict: Mapping, name: str, shape: tuple, dtype):
    if name not in state_dict:
        raise ValueError(f"state_dict is missing {name!r} (expected keys weight_ih_l0, weight_hh_l0, "
                         f"bias_ih_l0, bias_hh_l0); got keys {sorted(state_dict)}")
    a = np.asarray(state_dict[name])
    if a.shape != shape:
        raise ValueError(f"state_dict[{name!r}] must have shape {shape}, got {a.shape}")
    return jnp.asarray(a, dtype)


def _from_torch(state_dict: Mapping, readout, n_gates: int, dtype):
    """(W_xh (D, nH), W_hh (H, nH), b_ih, b_hh, W_ho, b_o) from PyTorch's one-layer layout."""
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict must be a mapping of arrays, got {type(state_dict).__name__}")
    deeper = [k for k in state_dict if k.endswith("_l1") or "_reverse" in k]
    if deeper:
        raise ValueError(f"state_dict holds more than one layer or direction ({deeper}); only a one-layer, "
                         "unidirectional cell can be imported")
    w_ih = np.asarray(state_dict.get("weight_ih_l0", np.zeros((0, 0))))
    if w_ih.ndim != 2 or w_ih.shape[0] % n_gates or w_ih.shape[0] == 0:
        raise ValueError(f"state_dict['weight_ih_l0'] must have shape ({n_gates}H, D), got {w_ih.shape}")
    nH, D = w_ih.shape
    H = nH // n_gates
    W_ih = _torch_array(state_dict, "weight_ih_l0", (nH, D), dtype)
    W_hh = _torch_array(state_dict, "weight_hh_l0", (nH, H), dtype)
    b_ih = _torch_array(state_dict, "bias_ih_l0", (nH,), dtype)
    b_hh = _torch_array(state_dict, "bias_hh_l0", (nH,), dtype)
    if readout is None:  # default read-out: the identity, so outputs == hs, as torch.nn.LSTM/GRU return
        W_ho, b_o = jnp.eye(H, dtype=dtype), jnp.zeros((H,), dtype)
    else:
        if not isinstance(readout, Mapping) or "weight" not in readout:
            raise ValueError("readout must be a mapping with 'weight' (O, H) and optional 'bias' (O,), "
                             "the layout of torch.nn.Linear's state_dict")
        w = np.asarray(readout["weight"])
        if w.ndim != 2 or w.shape[1] != H:
            raise ValueError(f"readout['weight'] must have shape (O, H) with H={H}, got {w.shape}")
        O = w.shape[0]
        W_ho = jnp.asarray(w.T, dtype)  # torch's y = W h + b is our y = h W^T + b
        b_o = (jnp.zeros((O,), dtype) if readout.get("bias") is None
               else _torch_array(readout, "bias", (O,), dtype))
    return W_ih.T, W_hh.T, b_ih, b_hh, W_ho, b_o  # torch's W x is our x W^T (row convention)


def lstm_params_from_torch(state_dict: Mapping, readout=None, *, dtype=jnp.float32) -> LSTMParams:
    """:class:`LSTMParams` from a ``torch.nn.LSTM`` (one layer) state dict of plain arrays.

    Args:
      state_dict: ``weight_ih_l0 (4H, D)``, ``weight_hh_l0 (4H, H)``, ``bias_ih_l0 (4H,)``,
        ``bias_hh_l0 (4H,)``, gates in PyTorch's order i, f, g, o (ours too), e.g.
        ``{k: v.detach().numpy() for k, v in lstm.state_dict().items()}``.
      readout: ``{"weight": (O, H), "bias": (O,)}`` (a ``torch.nn.Linear`` state dict), or None
        for the identity read-out W_ho = I_H, b_o = 0, so that ``outputs == hs`` -- the ``output``
        tensor that ``torch.nn.LSTM`` itself returns.
      dtype: parameter dtype.

    The two biases enter only as their sum, b_h = bias_ih + bias_hh. No torch import needed.
    """
    W_xh, W_hh, b_ih, b_hh, W_ho, b_o = _from_torch(state_dict, readout, 4, dtype)
    return LSTMParams(W_xh=W_xh, W_hh=W_hh, b_h=b_ih + b_hh, W_ho=W_ho, b_o=b_o)


def gru_params_from_torch(state_dict: Mapping, readout=None, *, dtype=jnp.float32) -> GRUParams:
    """:class:`GRUParams` from a ``torch.nn.GRU`` (one layer) state dict; see :func:`lstm_params_from_torch`.

    Gates in PyTorch's order r, z, n (ours too); both biases are kept (b_hn sits inside r_t * (.)).
    """
    W_xh, W_hh, b_ih, b_hh, W_ho, b_o = _from_torch(state_dict, readout, 3, dtype)
    return GRUParams(W_xh=W_xh, W_hh=W_hh, b_xh=b_ih, b_hh=b_hh, W_ho=W_ho, b_o=b_o)


def params_to_torch(params: LSTMParams | GRUParams):
    """The inverse of the importers: ``(state_dict, readout)`` of NumPy arrays in PyTorch's layout.

    For an LSTM the summed bias goes to ``bias_ih_l0`` and ``bias_hh_l0`` is zero (same cell).
    """
    if isinstance(params, LSTMParams):
        b_ih, b_hh = params.b_h, jnp.zeros_like(params.b_h)
    elif isinstance(params, GRUParams):
        b_ih, b_hh = params.b_xh, params.b_hh
    else:
        raise ValueError(f"params must be LSTMParams or GRUParams, got {type(params).__name__}")
    state = {"weight_ih_l0": params.W_xh.T, "weight_hh_l0": params.W_hh.T, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh}
    readout = {"weight": params.W_ho.T, "bias": params.b_o}
    return ({k: np.asarray(v) for k, v in state.items()}, {k: np.asarray(v) for k, v in readout.items()})


# --------------------------------------------------------------------- cell-generic dispatching


def cell_name(params) -> str:
    """``"rnn"``, ``"lstm"`` or ``"gru"`` for :class:`RNNParams`, :class:`LSTMParams`, :class:`GRUParams`."""
    if isinstance(params, LSTMParams):
        return "lstm"
    if isinstance(params, GRUParams):
        return "gru"
    if isinstance(params, RNNParams):
        return "rnn"
    raise ValueError(f"params must be RNNParams, LSTMParams or GRUParams, got {type(params).__name__}")


def init_cell(cell: str, key: jax.Array, input_size: int, hidden_size: int, output_size: int, **kwargs):
    """:func:`rnnjax.init_rnn`, :func:`init_lstm` or :func:`init_gru` by name (``cell`` in :data:`CELLS`)."""
    check_choice("cell", cell, CELLS)
    init = {"rnn": init_rnn, "lstm": init_lstm, "gru": init_gru}[cell]
    return init(key, input_size, hidden_size, output_size, **kwargs)


def cell_scan(params, xs: jax.Array, carry0=None, *, activation: str = "tanh"):
    """Any cell over ``xs (T, D)``: ``(final carry, hs (T, H))``; the carry is h, or (h, c) for an LSTM.

    ``activation`` is the vanilla RNN's non-linearity and is ignored by the gated cells.
    """
    name = cell_name(params)
    if name == "lstm":
        final, hs, _ = lstm_scan(params, xs, carry0)
        return final, hs
    if name == "gru":
        return gru_scan(params, xs, carry0)
    hs, _ = rnn_states(params, xs, _initial_h(params, carry0), activation=activation)
    return hs[-1], hs


def cell_forward(params, xs: jax.Array, carry0=None, *, activation: str = "tanh"):
    """Any cell over one sequence ``xs (T, D)``: ``(hs (T, H), outputs (T, O))``, outputs = hs W_ho + b_o."""
    cell_name(params)
    _check_xs(params, xs)
    return _cell_forward(params, xs, carry0, activation=activation)


@partial(jax.jit, static_argnames=("activation",))
def _cell_forward(params, xs, carry0, *, activation):
    _, hs = cell_scan(params, xs, carry0, activation=activation)
    return hs, hs @ params.W_ho + params.b_o  # y_t = h_t W_ho + b_o


def cell_predict(params, xs: jax.Array, carry0=None, *, activation: str = "tanh") -> jax.Array:
    """Read-outs of any cell: ``xs (T, D) -> (T, O)`` or a batch ``(B, T, D) -> (B, T, O)`` (vmapped)."""
    if xs.ndim == 3:
        _check_xs(params, xs, batched=True)
        return jax.vmap(lambda x: _cell_forward(params, x, carry0, activation=activation)[1])(xs)
    return cell_forward(params, xs, carry0, activation=activation)[1]


def cell_loss(params, xs: jax.Array, targets: jax.Array, *, loss: str, activation: str = "tanh", carry0=None):
    """The per-sequence loss of :mod:`rnnjax.losses` on any cell's read-outs (one sequence)."""
    _, outputs = cell_forward(params, xs, carry0, activation=activation)
    return get_loss(loss).value(outputs, targets)


def _check_batch(params, xs, targets, loss):
    batched = xs.ndim == 3
    _check_xs(params, xs, batched=batched)
    check_targets(loss, xs.shape[:-1] + (params.W_ho.shape[1],), targets)
    return batched


def _loss_and_grad_with_carry(params, xs, targets, *, loss, activation, carry0):
    """(mean loss, grads, final carry) by ``jax.value_and_grad``; batches (B, T, D) via vmap + mean."""
    spec = get_loss(loss)

    def one(p, x, y, c0):
        final, hs = cell_scan(p, x, c0, activation=activation)
        return spec.value(hs @ p.W_ho + p.b_o, y), final  # L(y_t = h_t W_ho + b_o, targets)

    def mean_loss(p):
        if xs.ndim == 2:
            return one(p, xs, targets, carry0)
        c_axis = None if carry0 is None or jax.tree.leaves(carry0)[0].ndim == 1 else 0
        values, finals = jax.vmap(one, in_axes=(None, 0, 0, c_axis))(p, xs, targets, carry0)
        return jnp.mean(values), finals  # batch mean of per-sequence losses

    (value, final), grads = jax.value_and_grad(mean_loss, has_aux=True)(params)
    return value, grads, final


def cell_loss_and_grad(params, xs: jax.Array, targets: jax.Array, *, loss: str, activation: str = "tanh",
                       carry0=None, method: str = "autograd"):
    """Loss and ``jax.grad`` gradients for any cell, one sequence or a batch.

    Args:
      params: :class:`rnnjax.RNNParams`, :class:`LSTMParams` or :class:`GRUParams`.
      xs: inputs (T, D), or a batch (B, T, D).
      targets: as :func:`rnnjax.loss_and_grad` (``mse_last`` (O,), ``mse`` (T, O), ``xent`` (T,)), batched alike.
      loss: ``"mse_last"``, ``"mse"`` or ``"xent"``.
      activation: the vanilla RNN's non-linearity (ignored by LSTM/GRU).
      carry0: initial carry (h0, or (h0, c0) for an LSTM); zeros when None.
      method: only ``"autograd"`` (reverse-mode ``jax.grad`` through the scan); the hand-written
        BPTT of the vanilla RNN is :func:`rnnjax.loss_and_grad`.

    Returns:
      ``(loss_value, grads)`` with ``grads`` of the type of ``params``; batch means for a batch.
    """
    check_choice("method", method, ("autograd",))
    cell_name(params)
    _check_batch(params, xs, targets, loss)
    return _cell_loss_and_grad(params, xs, targets, carry0, loss=loss, activation=activation)


@partial(jax.jit, static_argnames=("loss", "activation"))
def _cell_loss_and_grad(params, xs, targets, carry0, *, loss, activation):
    value, grads, _ = _loss_and_grad_with_carry(params, xs, targets, loss=loss, activation=activation,
                                                carry0=carry0)
    return value, grads


# -------------------------------------------------------------------------------------- training


@partial(jax.jit, static_argnames=("loss", "num_steps", "optimizer", "activation", "carry_state"))
def _train_cell(params, xs, targets, learning_rate, clip_norm, carry0, *, loss, num_steps, optimizer,
                activation, carry_state):
    B = (xs.shape[1],) if xs.ndim == 4 else ()
    if cell_name(params) == "lstm":
        c = lstm_initial_carry(params, carry0)
        start = jax.tree.map(lambda a: jnp.broadcast_to(a, B + a.shape[-1:]), c)
    else:
        h = _initial_h(params, carry0)
        start = jnp.broadcast_to(h, B + h.shape[-1:])

    loss_and_grad_at = lambda p, x, y, c: _loss_and_grad_with_carry(p, x, y, loss=loss, activation=activation,
                                                                     carry0=c)
    return optimize(loss_and_grad_at, params, xs, targets, start, learning_rate, clip_norm, num_steps=num_steps,
                    optimizer=optimizer, carry_state=carry_state)


def train_cell(params, xs: jax.Array, targets: jax.Array, *, loss: str, num_steps: int, learning_rate,
               optimizer: str = "sgd", clip_norm=None, activation: str = "tanh", carry0=None,
               carry_state: bool = False):
    """Train any cell (vanilla RNN, LSTM, GRU) with ``jax.grad`` inside one jitted ``lax.scan``.

    The cell-generic twin of :func:`rnnjax.train` with ``method="autograd"``: same data layout,
    same optimiser (:func:`rnnjax.make_optimizer`, global-norm clipping), same halting on the
    first non-finite step and the same :class:`rnnjax.TrainHistory` record (``grad_whh_*`` are
    norms of the gradient w.r.t. the stacked recurrent matrix W_hh (H, nH)). Pure, so
    ``jax.vmap`` over stacked parameters sweeps seeds.

    Args:
      params: initial :class:`rnnjax.RNNParams`, :class:`LSTMParams` or :class:`GRUParams`.
      xs: (N, T, D) -- one sequence per step -- or (N, B, T, D) -- a batch per step; step s uses item s mod N.
      targets: targets for each item, with the same leading N.
      loss: ``"mse_last"``, ``"mse"`` or ``"xent"``.
      num_steps: number of updates.
      learning_rate: step size (may be traced).
      optimizer: ``"sgd"`` or ``"adam"``.
      clip_norm: global-norm clipping threshold, or None.
      activation: the vanilla RNN's non-linearity (ignored by LSTM/GRU).
      carry0: initial carry (h0 (H,), or (h0, c0) for an LSTM); zeros when None.
      carry_state: if True, each item starts from the previous item's final carry (gradient stopped).

    Returns:
      ``(params, history)``.
    """
    check_positive_int("num_steps", num_steps)
    cell_name(params)
    if xs.ndim not in (3, 4):
        raise ValueError(f"xs must be (N, T, D) or (N, B, T, D), got shape {tuple(xs.shape)}")
    if targets.shape[0] != xs.shape[0]:
        raise ValueError(f"targets must have the same leading N as xs ({xs.shape[0]}), "
                         f"got shape {tuple(targets.shape)}")
    _check_batch(params, xs[0], targets[0], loss)
    make_optimizer(learning_rate, clip_norm=clip_norm, name=optimizer)  # validate eagerly
    return _train_cell(params, xs, targets, learning_rate, clip_norm, carry0, loss=loss, num_steps=num_steps,
                       optimizer=optimizer, activation=activation, carry_state=carry_state)


# ------------------------------------------------------------------ flat state, for the analysis


def flat_state(params, carry=None) -> jax.Array:
    """The carry as one flat vector s (S,): h (H,) for RNN/GRU, concat(h, c) (2H,) for an LSTM; zeros if None."""
    if cell_name(params) == "lstm":
        c = lstm_initial_carry(params, carry)
        return jnp.concatenate([c.h, c.c])
    return _initial_h(params, carry)


def flat_step(params, *, activation: str = "tanh"):
    """``step(s (S,), x (D,)) -> s_next (S,)``: one step of any cell on the flat state of :func:`flat_state`.

    This is the function the Jacobian / lag-profile / Lyapunov tools of :mod:`rnnjax.analysis`
    take (``jacobians_of(step, s0, xs)`` etc.); for an LSTM the Jacobian is (2H, 2H) over (h, c).
    """
    name = cell_name(params)
    if name == "lstm":
        H = _hidden_size(params)

        def step(s, x):
            new = lstm_cell(params, LSTMCarry(s[:H], s[H:]), x)
            return jnp.concatenate([new.h, new.c])  # s_t = (h_t, c_t)
        return step
    if name == "gru":
        return lambda s, x: gru_cell(params, s, x)
    return lambda s, x: rnn_cell(params, s, x, activation=activation)[0]


def hidden_of_flat(params, s: jax.Array) -> jax.Array:
    """The hidden state h (H,) inside a flat state s: all of it, or its first half for an LSTM."""
    return s[: _hidden_size(params)]


def flat_readout_grad(params, s_T: jax.Array, target: jax.Array, *, loss: str = "mse_last") -> jax.Array:
    """g_T = dL_T/ds_T (S,) for the loss of the read-out y_T = h_T W_ho + b_o at the last step.

    L_T depends on s_T only through h_T, so an LSTM's c-part of g_T is zero.
    """
    spec = get_loss(loss)

    def L(s):
        y = hidden_of_flat(params, s) @ params.W_ho + params.b_o  # y_T = h_T W_ho + b_o
        return spec.value(y[None], _last_target(loss, target))
    return jax.grad(L)(s_T)


def _last_target(loss, target):
    """The last step's target shaped for a one-step output sequence (1, O)."""
    return target if loss == "mse_last" else target[None]


def flat_state_grads(params, xs: jax.Array, target: jax.Array, *, loss: str = "mse_last", activation: str = "tanh",
                     carry0=None) -> jax.Array:
    """dL_T/ds_t for every t (T, S): row t-1 is the gradient of the last step's loss w.r.t. the flat state s_t.

    One reverse pass: L_T is differentiated w.r.t. additive perturbations e_t of every state,
    s_t = step(s_{t-1}, x_t) + e_t, at e = 0, so dL_T/de_t = dL_T/ds_t (the report's §4.1 sum
    with only the k = T term). Unlike a norm-only lag profile it keeps the vectors, so an
    LSTM's gradient can be split into its h-part ``[:, :H]`` and its cell-state part ``[:, H:]``.
    """
    _check_xs(params, xs)
    flat_state(params, carry0)
    return _flat_state_grads(params, xs, target, carry0, loss=loss, activation=activation)


@partial(jax.jit, static_argnames=("loss", "activation"))
def _flat_state_grads(params, xs, target, carry0, *, loss, activation):
    step = flat_step(params, activation=activation)
    spec = get_loss(loss)

    def L(eps):
        def body(s, x_e):
            x, e = x_e
            s = step(s, x) + e  # s_t = step(s_{t-1}, x_t) + e_t
            return s, None

        s_T, _ = lax.scan(body, flat_state(params, carry0), (xs, eps))
        y = hidden_of_flat(params, s_T) @ params.W_ho + params.b_o  # y_T = h_T W_ho + b_o
        return spec.value(y[None], _last_target(loss, target))

    S = flat_state(params, carry0).shape[0]
    return jax.grad(L)(jnp.zeros((xs.shape[0], S), params.W_hh.dtype))


def _log_norm(v, axis=-1):
    """log ||v|| with the norm clamped to the smallest normal float (a vanished gradient stays finite)."""
    n = jnp.linalg.norm(v, axis=axis)
    return jnp.log(jnp.maximum(n, jnp.finfo(n.dtype).tiny))


def cell_lag_profile(params, xs: jax.Array, target: jax.Array, *, loss: str = "mse_last", activation: str = "tanh",
                     carry0=None) -> dict:
    """Natural-log lag profiles of the last step's loss for any cell, along one sequence ``xs (T, D)``.

    Returns a dict of (T,) arrays indexed by the lag k = 0..T-1 (report §4.1):

    * ``"state"`` -- log ||dL_T/ds_{T-k}|| over the whole recurrent state s (h, or (h, c) for an
      LSTM), by :func:`rnnjax.analysis.log_lag_profile_of` on :func:`flat_step`;
    * ``"h"`` -- log ||dL_T/dh_{T-k}||, the hidden-state part;
    * ``"c"`` -- (LSTM only) log ||dL_T/dc_{T-k}||, the part that flows back through the cell state.

    The split parts come from :func:`flat_state_grads` (no renormalisation: a part below the
    smallest normal float reads as log(tiny) ~ -87 in float32).
    """
    _check_xs(params, xs)
    step, s0 = flat_step(params, activation=activation), flat_state(params, carry0)
    g_T = flat_readout_grad(params, states_of(step, s0, xs)[-1], target, loss=loss)  # dL_T/ds_T
    state = log_lag_profile_of(step, s0, xs, g_T)
    if cell_name(params) != "lstm":
        return {"state": state, "h": state}  # the state is h
    G = flat_state_grads(params, xs, target, loss=loss, activation=activation, carry0=carry0)[::-1]  # row k: s_{T-k}
    H = _hidden_size(params)
    return {"state": state, "h": _log_norm(G[:, :H]), "c": _log_norm(G[:, H:])}


def cell_mse(params, xs: jax.Array, targets: jax.Array, *, activation: str = "tanh") -> jax.Array:
    """Mean squared error of the last read-out over a batch: mean_{b,o} (y_T[b, o] - targets[b, o])^2.

    ``xs (B, T, D)``, ``targets (B, O)``; for the adding problem this is the MSE whose constant
    baseline is 1/6 (:data:`rnnjax.data.tasks.ADDING_BASELINE_MSE`).
    """
    outputs = cell_predict(params, xs, activation=activation)  # (B, T, O)
    return jnp.mean((outputs[:, -1, :] - targets) ** 2)  # MSE of y_T


def train_cell_sweep(stacked_params, xs: jax.Array, targets: jax.Array, **train_kwargs):
    """:func:`train_cell` for every run of ``stacked_params`` (a leading run axis on every leaf) in one
    vmapped program, all runs on the same data; returns ``(params, history)`` with that leading axis."""
    return jax.vmap(lambda p: train_cell(p, xs, targets, **train_kwargs))(stacked_params)


@partial(jax.jit, static_argnames=("cell", "hidden_size", "loss", "num_steps", "optimizer", "clip_norm",
                                   "activation", "init_kwargs"))
def fit_cell_seeds(keys: jax.Array, xs: jax.Array, targets: jax.Array, learning_rate, *, cell: str,
                   hidden_size: int, loss: str, num_steps: int, optimizer: str = "sgd", clip_norm=None,
                   activation: str = "tanh", init_kwargs: tuple = ()):
    """Initialise and train one ``cell`` model per PRNG key, all in one jitted, vmapped program.

    The any-cell twin of :func:`rnnjax.forecast.fit_rnn_seeds`: seed s starts from
    ``init_cell(cell, keys[s], D, hidden_size, O, **dict(init_kwargs))`` and is trained by
    :func:`train_cell` (``jax.grad``) on ``xs``/``targets`` in :func:`rnnjax.train`'s layout
    (e.g. (1, B, T, D) and (1, B, O) for full-batch ``mse_last``).

    Args:
      keys: (S, 2) PRNG keys.
      xs, targets: training items, see :func:`train_cell`.
      learning_rate: traced step size.
      cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
      hidden_size, loss, num_steps, optimizer, clip_norm, activation: see :func:`train_cell`.
      init_kwargs: extra initialiser options as a hashable tuple of pairs, e.g. ``(("forget_bias", 0.0),)``.

    Returns:
      ``(params, history)`` with a leading seed axis S on every leaf.
    """
    D, O = xs.shape[-1], targets.shape[-1]

    def one(key):
        params = init_cell(cell, key, D, hidden_size, O, **dict(init_kwargs))
        return train_cell(params, xs, targets, loss=loss, num_steps=num_steps, learning_rate=learning_rate,
                          optimizer=optimizer, clip_norm=clip_norm, activation=activation)

    return jax.vmap(one)(keys)


@partial(jax.jit, static_argnames=("activation",))
def predict_last_seeds(stacked_params, xs: jax.Array, *, activation: str = "tanh") -> jax.Array:
    """Last-step read-outs y_T (S, M, O) of windows ``xs (M, T, D)`` for stacked parameters of any cell.

    Each window starts from a zero carry, as in training (the any-cell twin of
    :func:`rnnjax.forecast.predict_next_seeds`).
    """
    return jax.vmap(lambda p: cell_predict(p, xs, activation=activation)[:, -1, :])(stacked_params)


@partial(jax.jit, static_argnames=("loss", "activation"))
def mean_lag_profiles(stacked_params, xs: jax.Array, targets: jax.Array, *, loss: str = "mse_last",
                      activation: str = "tanh") -> dict:
    """:func:`cell_lag_profile` averaged over sequences, for stacked parameters of one cell type.

    Args:
      stacked_params: parameters with a leading model axis M on every leaf.
      xs: sequences (N, T, D); targets: (N, O) for ``mse_last``.

    Returns:
      dict of (M, T) arrays: the mean over the N sequences of the natural-log profiles
      (a geometric mean of the norms), keys as :func:`cell_lag_profile`.
    """
    one = lambda p, x, y: cell_lag_profile(p, x, y, loss=loss, activation=activation)
    per = jax.vmap(lambda p: jax.vmap(lambda x, y: one(p, x, y))(xs, targets))(stacked_params)  # (M, N, T)
    return {k: v.mean(axis=1) for k, v in per.items()}  # mean_n log ||.||


@partial(jax.jit, static_argnames=("activation",))
def mse_last_seeds(stacked_params, xs: jax.Array, targets: jax.Array, *, activation: str = "tanh") -> jax.Array:
    """:func:`cell_mse` of every model of ``stacked_params`` (leading axis S) on one batch: (S,)."""
    return jax.vmap(lambda p: cell_mse(p, xs, targets, activation=activation))(stacked_params)
