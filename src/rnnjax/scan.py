"""Any :class:`rnnjax.Cell` over a sequence through ``lax.scan``, a linear read-out, and its losses.

    carry_t = cell.step(params, carry_{t-1}, x_t),   h_t = cell.hidden(carry_t)     (report §1.2)
    y_t     = h_t W_ho + b_o                                                         (report §1.2)

A model is :class:`ModelParams` ``(cell, readout)``: the cell's own parameter pytree and a
:class:`Readout`. Functions take one sequence ``xs (T, D)``; batches come from ``jax.vmap``
(:func:`make_loss` averages a batch). Gradients are ``jax.grad`` through the scan; the vanilla
cell also has the hand-written BPTT of report §2.2 (:func:`rnnjax.loss_and_grad`).
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax._checks import check_sizes
from rnnjax.cells.base import Cell
from rnnjax.cells.gru import GRUCellParams, GRUParams, gru
from rnnjax.cells.lstm import LSTMCarry, LSTMCellParams, LSTMParams, lstm
from rnnjax.losses import check_targets, get_loss


class Readout(NamedTuple):
    """The linear read-out y_t = h_t W_ho + b_o of report §1.2 (a PyTree)."""

    W_ho: jax.Array  # (H, O)
    b_o: jax.Array  # (O,)


class ModelParams(NamedTuple):
    """A cell's parameters (any pytree) and its :class:`Readout`: a whole model for the generic losses."""

    cell: Any
    readout: Readout


def readout(params: Readout, hs: jax.Array) -> jax.Array:
    """y_t = h_t W_ho + b_o for ``hs (..., H)`` -> ``(..., O)`` (report §1.2, phi_o = identity)."""
    return hs @ params.W_ho + params.b_o  # y_t = h_t W_ho + b_o


def init_model(cell: Cell, key: jax.Array, input_size: int, hidden_size: int, output_size: int, *,
               readout_std=None, dtype=None) -> ModelParams:
    """``ModelParams(cell.init(key, D, H), Readout)``, W_ho ~ N(0, std ``readout_std``, default 1/sqrt(H)), b_o = 0.

    The read-out draws from the third key of ``jax.random.split(key, 3)``, as :func:`rnnjax.init_rnn`,
    :func:`rnnjax.init_lstm` and :func:`rnnjax.init_gru` do, so the built-in cells reproduce them
    exactly from the same key. ``dtype`` defaults to that of the cell's parameters.
    """
    check_sizes(input_size=input_size, hidden_size=hidden_size, output_size=output_size)
    params = cell.init(key, input_size, hidden_size)
    dtype = dtype or jax.tree.leaves(params)[0].dtype
    k_ho = jax.random.split(key, 3)[2]
    z = jax.random.normal(k_ho, (hidden_size, output_size), dtype)
    W_ho = z / jnp.sqrt(hidden_size) if readout_std is None else readout_std * z  # N(0, std^2)
    return ModelParams(params, Readout(W_ho.astype(dtype), jnp.zeros((output_size,), dtype)))


def check_step(cell: Cell, params, carry0, xs: jax.Array) -> None:
    """Raise ``ValueError`` unless ``xs`` is (T, D) with T >= 1 and ``cell.step`` maps ``carry0`` to a carry
    of the same structure, shapes and dtypes (checked abstractly by ``jax.eval_shape``, no compute)."""
    if jnp.ndim(xs) != 2 or jnp.shape(xs)[0] < 1:
        raise ValueError(f"xs must have shape (T, D) with T >= 1 (one sequence; vmap for a batch), "
                         f"got shape {tuple(jnp.shape(xs))}")
    try:
        out = jax.eval_shape(cell.step, params, carry0, xs[0])
    except (TypeError, ValueError) as e:
        shapes = jax.tree.map(lambda a: tuple(jnp.shape(a)), (carry0, xs[0]))
        raise ValueError(f"cell.step cannot take this carry and input (carry shapes, x shape = {shapes}): "
                         f"{str(e).splitlines()[0]}") from None
    want = jax.tree.map(lambda a: (jnp.shape(a), jnp.result_type(a)), carry0)
    got = jax.tree.map(lambda a: (a.shape, a.dtype), out)
    if jax.tree.structure(out) != jax.tree.structure(carry0) or got != want:
        raise ValueError(f"cell.step must return a carry like the one it takes: took {want}, returned {got} "
                         "(check the parameters' dtype against the inputs' and the initial carry's)")


def _unroll(cell, params, xs, carry0):
    def body(carry, x):
        carry = cell.step(params, carry, x)  # carry_t = step(params, carry_{t-1}, x_t)
        return carry, cell.hidden(carry)  # h_t = hidden(carry_t)

    carry_T, hs = lax.scan(body, carry0, xs)
    return hs, carry_T


def unroll(cell: Cell, params, xs: jax.Array, carry0=None):
    """Run ``cell`` over one sequence through ``lax.scan``.

    Args:
      cell: a :class:`rnnjax.Cell`.
      params: the cell's parameters (``cell.init``'s pytree).
      xs: inputs (T, D).
      carry0: the initial carry; ``cell.initial_carry(params)`` when None.

    Returns:
      ``(hs, carry_T)``: ``hs[t] = cell.hidden(carry_{t+1})`` (T, H) and the final carry.
    """
    carry0 = cell.initial_carry(params) if carry0 is None else carry0
    check_step(cell, params, carry0, xs)
    return _unroll(cell, params, xs, carry0)


def sequence_loss(cell: Cell, model: ModelParams, xs: jax.Array, targets: jax.Array, *, loss: str = "mse_last",
                  carry0=None) -> jax.Array:
    """The per-sequence loss of :mod:`rnnjax.losses` on ``readout(hs)`` for one sequence ``xs (T, D)``.

    ``targets``: (O,) for ``mse_last``, (T, O) for ``mse``, (T,) int for ``xent``. Traceable; no checks.
    """
    return get_loss(loss).value(predict(cell, model, xs, carry0), targets)  # L(y_t = h_t W_ho + b_o, targets)


def predict(cell: Cell, model: ModelParams, xs: jax.Array, carry0=None) -> jax.Array:
    """Read-outs y_t = h_t W_ho + b_o (T, O) of one sequence ``xs (T, D)``; traceable, ``jax.vmap`` for a batch."""
    carry0 = cell.initial_carry(model.cell) if carry0 is None else carry0
    hs, _ = _unroll(cell, model.cell, xs, carry0)
    return readout(model.readout, hs)  # y_t = h_t W_ho + b_o


def make_loss(cell: Cell, loss: str = "mse_last"):
    """``loss_fn(model, (xs, targets)) -> scalar`` for :func:`rnnjax.fit`: one sequence ``xs (T, D)``, or the
    mean over a batch ``xs (B, T, D)`` (``jax.vmap`` of :func:`sequence_loss`), each from the zero carry."""
    get_loss(loss)

    def loss_fn(model, batch):
        xs, targets = batch
        one = partial(sequence_loss, cell, loss=loss)
        if xs.ndim == 2:
            return one(model, xs, targets)
        return jnp.mean(jax.vmap(one, in_axes=(None, 0, 0))(model, xs, targets))  # batch mean

    # fit's up-front check of every item of stacked batches (xs (N, ..., T, D), targets): shapes and class labels
    loss_fn.check_batches = lambda model, batches: check_targets(
        loss, jnp.shape(batches[0])[:-1] + (model.readout.W_ho.shape[1],), batches[1])
    return loss_fn


@partial(jax.jit, static_argnames=("cell", "loss"))
def _cell_loss_and_grad(model, xs, targets, *, cell, loss):
    return jax.value_and_grad(make_loss(cell, loss))(model, (xs, targets))


def cell_loss_and_grad(cell: Cell, model: ModelParams, xs: jax.Array, targets: jax.Array, *,
                       loss: str = "mse_last"):
    """The loss and its ``jax.grad`` for any cell with a read-out; one sequence (T, D) or a batch mean (B, T, D).

    Returns ``(value, grads)``, ``grads`` a :class:`ModelParams` like ``model``. Jitted (``cell`` static).
    """
    batched = jnp.ndim(xs) == 3
    check_step(cell, model.cell, cell.initial_carry(model.cell), xs[0] if batched else xs)
    check_targets(loss, jnp.shape(xs)[:-1] + (model.readout.W_ho.shape[1],), targets)
    return _cell_loss_and_grad(model, xs, targets, cell=cell, loss=loss)


# ------------------------------------------------ the report-style whole models of LSTM and GRU

_LSTM, _GRU = lstm(), gru()


def _whole_forward(cell, split, params, xs, carry0):
    model = split(params)
    carry0 = cell.initial_carry(model.cell) if carry0 is None else carry0
    check_step(cell, model.cell, carry0, xs)
    return _jit_whole_forward(model, xs, carry0, cell=cell)


@partial(jax.jit, static_argnames=("cell",))
def _jit_whole_forward(model, xs, carry0, *, cell):
    hs, _ = _unroll(cell, model.cell, xs, carry0)
    return hs, readout(model.readout, hs)  # y_t = h_t W_ho + b_o


def _split_lstm(p: LSTMParams) -> ModelParams:
    return ModelParams(LSTMCellParams(*p[:3]), Readout(p.W_ho, p.b_o))


def _split_gru(p: GRUParams) -> ModelParams:
    return ModelParams(GRUCellParams(*p[:4]), Readout(p.W_ho, p.b_o))


def lstm_forward(params: LSTMParams, xs: jax.Array, carry0=None):
    """Run an LSTM with read-out over one sequence: ``xs (T, D)`` -> ``(hs (T, H), outputs (T, O))``.

    ``carry0``: initial ``(h0, c0)``, each (H,); zeros when None. :func:`unroll` of :func:`rnnjax.cells.lstm`.
    """
    if carry0 is not None:
        carry0 = LSTMCarry(*(jnp.asarray(a, params.W_hh.dtype) for a in carry0))
    return _whole_forward(_LSTM, _split_lstm, params, xs, carry0)


def gru_forward(params: GRUParams, xs: jax.Array, h0=None):
    """Run a GRU with read-out over one sequence: ``xs (T, D)`` -> ``(hs (T, H), outputs (T, O))``.

    ``h0``: initial state (H,); zeros when None. :func:`unroll` of :func:`rnnjax.cells.gru`.
    """
    h0 = None if h0 is None else jnp.asarray(h0, params.W_hh.dtype)
    return _whole_forward(_GRU, _split_gru, params, xs, h0)
