"""Any :class:`rnnjax.Cell` over a sequence through ``lax.scan``, a linear read-out, and its losses.

    carry_t = cell.step(params, carry_{t-1}, x_t),   h_t = cell.hidden(carry_t)     (report §1.2)
    y_t     = h_t W_ho + b_o                                                         (report §1.2)

A model is :class:`ModelParams` ``(cell, readout)``: the cell's own parameter pytree and a
:class:`Readout` (the report's :class:`rnnjax.RNNParams` is one too, flat). Functions take one
sequence ``xs (T, D)``, padded to a ``length`` or run in ``reverse`` if asked; batches come from
``jax.vmap``, except that :func:`make_loss` hands a whole batch to a cell's own whole-sequence path
(``Cell.unroll``) when it has one. Gradients are ``jax.grad``; for the vanilla cell that is the
hand-written BPTT of report §2.2 (its ``custom_vjp``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax._checks import check_sizes
from rnnjax.cells.base import Cell
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
    exactly from the same key. ``dtype`` (default: that of the cell's parameters) sets every
    floating-point parameter, the cell's and the read-out's.
    """
    check_sizes(input_size=input_size, hidden_size=hidden_size, output_size=output_size)
    params = cell.init(key, input_size, hidden_size)
    if dtype is not None:
        params = jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, params)
    dtype = dtype or jax.tree.leaves(params)[0].dtype
    k_ho = jax.random.split(key, 3)[2]
    z = jax.random.normal(k_ho, (hidden_size, output_size), dtype)
    W_ho = z / jnp.sqrt(hidden_size) if readout_std is None else readout_std * z  # N(0, std^2)
    return ModelParams(params, Readout(W_ho.astype(dtype), jnp.zeros((output_size,), dtype)))


def _shapes(tree) -> str:
    return str(jax.tree.map(lambda a: f"{jnp.result_type(a)}{list(jnp.shape(a))}", tree))


def check_step(cell: Cell, params, carry0, xs: jax.Array, length=None) -> None:
    """Raise ``ValueError`` unless ``xs`` is (T, D) with T >= 1, ``length`` (if given) an integer scalar, and
    ``cell.step`` maps ``carry0`` to a carry of the same structure, shapes and dtypes (checked abstractly by
    ``jax.eval_shape``, no compute). Every message names both sides in full."""
    if jnp.ndim(xs) != 2 or jnp.shape(xs)[0] < 1:
        raise ValueError(f"xs must have shape (T, D) with T >= 1 (one sequence; vmap for a batch), "
                         f"got shape {tuple(jnp.shape(xs))}")
    if length is not None and (jnp.ndim(length) != 0 or not jnp.issubdtype(jnp.result_type(length), jnp.integer)):
        raise ValueError(f"length must be an integer scalar (the valid steps of one sequence), got {_shapes(length)}")
    check_carry_map(partial(cell.step, params), carry0, xs[0], name="cell.step",
                    hint=f"check the parameters' dtype {_shapes(params)} against the inputs' and the initial carry's")


def check_carry_map(fn, carry0, x, *, name: str, hint: str) -> None:
    """Raise ``ValueError`` unless ``fn(carry0, x)`` returns a carry of ``carry0``'s structure, shapes and dtypes
    (checked abstractly by ``jax.eval_shape``, no compute); the message names both sides in full."""
    try:
        out = jax.eval_shape(fn, carry0, x)
    except (TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{name} cannot take this carry and input: carry {_shapes(carry0)}, x {_shapes(x)}: "
                         f"{' '.join(str(e).split())} ({hint})") from None
    if jax.tree.structure(out) != jax.tree.structure(carry0) or _shapes(out) != _shapes(carry0):
        raise ValueError(f"{name} must return a carry like the one it takes: took {_shapes(carry0)}, returned "
                         f"{_shapes(out)} (with x {_shapes(x)}; {hint})")


def _flip_valid(a: jax.Array, length) -> jax.Array:
    """``a`` (T, ...) with its first ``length`` steps in reverse order and the padding left in place."""
    if length is None:
        return a[::-1]
    t = jnp.arange(a.shape[0])
    return a[jnp.where(t < length, length - 1 - t, t)]


def _scan_steps(cell: Cell, params, xs, carry0, length):
    if length is None:
        def body(carry, x):
            carry = cell.step(params, carry, x)  # carry_t = step(params, carry_{t-1}, x_t)
            return carry, cell.hidden(carry)  # h_t = hidden(carry_t)

        carry_T, hs = lax.scan(body, carry0, xs)
        return hs, carry_T

    def masked(carry, tx):
        t, x = tx
        new = cell.step(params, carry, x)  # carry_t = step(params, carry_{t-1}, x_t)
        h = cell.hidden(new)  # h_t = hidden(carry_t)
        valid = t < length  # past the sequence's end: the carry stays, the output is zero
        new = jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, carry)
        return new, jnp.where(valid, h, jnp.zeros_like(h))

    carry_T, hs = lax.scan(masked, carry0, (jnp.arange(xs.shape[0]), xs))
    return hs, carry_T


def _unroll(cell: Cell, params, xs, carry0, *, reverse: bool = False, length=None):
    """:func:`unroll` without checks (traceable): one sequence, or a batch ``(*batch, T, D)`` through
    ``cell.unroll`` when the cell has that whole-sequence path (and no ``length``)."""
    if reverse:
        xs = _flip_valid(xs, length)  # run from the last valid step to the first
    if length is None and cell.unroll is not None:
        hs, carry_T = cell.unroll(params, xs, carry0)
    else:
        hs, carry_T = _scan_steps(cell, params, xs, carry0, length)
    return (_flip_valid(hs, length) if reverse else hs), carry_T  # hs in the original time order


@partial(jax.jit, static_argnames=("cell", "reverse"))
def _jit_unroll(cell, params, xs, carry0, length, *, reverse):
    check_step(cell, params, carry0, xs, length)  # while tracing: a repeated call skips it with the trace
    return _unroll(cell, params, xs, carry0, reverse=reverse, length=length)


def unroll(cell: Cell, params, xs: jax.Array, carry0=None, *, reverse: bool = False, length=None):
    """Run ``cell`` over one sequence through ``lax.scan`` (or the cell's own whole-sequence path).

    Args:
      cell: a :class:`rnnjax.Cell` (static: the same cell compiles once).
      params: the cell's parameters (``cell.init``'s pytree).
      xs: inputs (T, D).
      carry0: the initial carry, any pytree (a plain tuple too); ``cell.initial_carry(params)`` when None.
      reverse: run from the last valid step to the first; ``hs`` still comes back in the original time
        order (flax's ``keep_order=True``), so ``hs[t]`` is the state after reading ``xs[t:L]`` backwards.
      length: the number of valid steps L of a padded sequence (an int, traced: new values compile
        nothing); steps t >= L leave the carry unchanged and give zero outputs. None: all T.

    Returns:
      ``(hs, carry_T)``: ``hs[t] = cell.hidden(carry_{t+1})`` (T, H) and the final carry (after step L).
      Jitted at this boundary: a repeated call with new values of the same shapes compiles nothing.
    """
    carry0 = cell.initial_carry(params) if carry0 is None else carry0
    return _jit_unroll(cell, params, xs, carry0, None if length is None else jnp.asarray(length), reverse=reverse)


def _sequence_value(loss: str, ys: jax.Array, targets: jax.Array, length) -> jax.Array:
    """The loss of one sequence's read-outs ``ys (T, O)``, of its first ``length`` steps when given."""
    spec = get_loss(loss)
    if length is None:
        return spec.value(ys, targets)  # L(y_t = h_t W_ho + b_o, targets)
    if loss == "mse_last":
        return spec.value(lax.dynamic_slice_in_dim(ys, length - 1, 1), targets)  # L(y_L, y)
    per_step = jax.vmap(lambda y, target: spec.value(y[None], target[None]))(ys, targets)  # L_t, (T,)
    return jnp.sum(jnp.where(jnp.arange(ys.shape[0]) < length, per_step, 0.0))  # sum over t < L


@partial(jax.jit, static_argnums=0, static_argnames="loss")
def sequence_loss(cell: Cell, model: ModelParams, xs: jax.Array, targets: jax.Array, *, loss: str = "mse_last",
                  carry0=None, length=None) -> jax.Array:
    """The per-sequence loss of :mod:`rnnjax.losses` on ``readout(hs)`` for one sequence ``xs (T, D)``.

    ``targets``: (O,) for ``mse_last``, (T, O) for ``mse``, (T,) int for ``xent``. With ``length`` L the
    loss is that of the first L steps alone (``mse_last`` reads y_L; the padding adds nothing).
    Jitted (``cell`` and ``loss`` static), traceable; no checks.
    """
    return batch_loss(cell, model, xs, targets, loss=loss, carry0=carry0, lengths=length)[0]


@partial(jax.jit, static_argnums=0, static_argnames="loss")
def batch_loss(cell: Cell, model: ModelParams, xs: jax.Array, targets: jax.Array, *, loss: str = "mse_last",
               carry0=None, lengths=None):
    """``(loss, carry_T)``: one sequence's loss ``xs (T, D)``, or the batch mean over ``xs (B, T, D)``.

    ``carry0``: the initial carry (batched, leading B, for a batch); the cell's initial carry when None.
    ``lengths``: valid steps, a scalar or (B,). A batch without lengths goes through the cell's
    whole-sequence path when it has one (the vanilla cell's hand BPTT contracts the batch in its
    backward pass), else ``jax.vmap`` over the sequences. Jitted (``cell`` and ``loss`` static), traceable;
    no checks.
    """
    if xs.ndim == 2:
        c0 = cell.initial_carry(model.cell) if carry0 is None else carry0
        hs, c_T = _unroll(cell, model.cell, xs, c0, length=lengths)
        return _sequence_value(loss, readout(model.readout, hs), targets, lengths), c_T
    c0 = _batch_carry(cell, model.cell, xs.shape[0]) if carry0 is None else carry0
    if lengths is None and cell.unroll is not None:  # the whole batch in one call of the cell's own path
        ys, c_T = cell.unroll(model.cell, xs, c0, model.readout)  # y_t = h_t W_ho + b_o, (B, T, O)
        return jnp.mean(get_loss(loss).value(ys, targets)), c_T  # batch mean

    def one(x, y, c, n):
        hs, c_T = _unroll(cell, model.cell, x, c, length=n)
        return _sequence_value(loss, readout(model.readout, hs), y, n), c_T

    values, c_T = jax.vmap(one, in_axes=(0, 0, 0, None if lengths is None else 0))(xs, targets, c0, lengths)
    return jnp.mean(values), c_T  # batch mean


@partial(jax.jit, static_argnums=0)
def predict(cell: Cell, model: ModelParams, xs: jax.Array, carry0=None, *, length=None) -> jax.Array:
    """Read-outs y_t = h_t W_ho + b_o (T, O) of one sequence ``xs (T, D)``; jitted (``cell`` static), traceable,
    ``jax.vmap`` for a batch."""
    carry0 = cell.initial_carry(model.cell) if carry0 is None else carry0
    hs, _ = _unroll(cell, model.cell, xs, carry0, length=length)
    return readout(model.readout, hs)  # y_t = h_t W_ho + b_o


def _batch_carry(cell: Cell, params, batch: int):
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (batch,) + jnp.shape(a)), cell.initial_carry(params))


def make_loss(cell: Cell, loss: str = "mse_last"):
    """``loss_fn(model, batch) -> scalar`` for :func:`rnnjax.fit`, each sequence from the zero carry.

    ``batch`` is ``(xs, targets)`` or ``(xs, targets, lengths)``: one sequence ``xs (T, D)`` (``lengths`` a
    scalar), or the mean over a batch ``xs (B, T, D)`` (``lengths`` (B,): a padded batch gives the loss and
    gradient of its unpadded sequences). A batch without lengths goes through the cell's whole-sequence
    path when it has one (the vanilla cell: the hand BPTT contracts the batch); else ``jax.vmap`` of
    :func:`sequence_loss`. The same ``(cell, loss)`` gives an equal function (one compiled program).
    """
    get_loss(loss)
    return _Loss(cell, loss)


@dataclass(frozen=True)
class _Loss:
    cell: Cell
    loss: str

    def __call__(self, model, batch):
        xs, targets, *rest = batch
        return batch_loss(self.cell, model, xs, targets, loss=self.loss, lengths=rest[0] if rest else None)[0]

    def check_batches(self, model, batches) -> None:
        """:func:`rnnjax.fit`'s up-front check of every item of stacked batches ``(xs (N, ..., T, D), targets)``:
        the targets' shapes and class labels."""
        check_targets(self.loss, jnp.shape(batches[0])[:-1] + (model.readout.W_ho.shape[1],), batches[1])


@partial(jax.jit, static_argnames=("cell", "loss"))
def _cell_loss_and_grad(model, xs, targets, lengths, *, cell, loss):
    check_step(cell, model.cell, cell.initial_carry(model.cell), xs[0] if xs.ndim == 3 else xs)  # while tracing
    batch = (xs, targets) if lengths is None else (xs, targets, lengths)
    return jax.value_and_grad(make_loss(cell, loss))(model, batch)


def cell_loss_and_grad(cell: Cell, model: ModelParams, xs: jax.Array, targets: jax.Array, *,
                       loss: str = "mse_last", lengths=None):
    """The loss and its gradient for any cell with a read-out; one sequence (T, D) or a batch mean (B, T, D).

    Returns ``(value, grads)``, ``grads`` shaped like ``model``. Jitted (``cell`` static); the vanilla
    cell's gradient is its hand BPTT (report §2.2) on CPU.
    """
    if jnp.ndim(xs) not in (2, 3):
        raise ValueError(f"xs must have shape (T, D) or (B, T, D), got shape {tuple(jnp.shape(xs))}")
    check_targets(loss, jnp.shape(xs)[:-1] + (model.readout.W_ho.shape[1],), targets)
    return _cell_loss_and_grad(model, xs, targets, lengths, cell=cell, loss=loss)


# ------------------------------------------------ a bidirectional sequence model


class BidirectionalParams(NamedTuple):
    """The forward and the backward cell's parameters (a PyTree)."""

    forward: Any
    backward: Any


def init_bidirectional(forward: Cell, backward: Cell, key: jax.Array, input_size: int,
                       hidden_size: int) -> BidirectionalParams:
    """``BidirectionalParams(forward.init(k1, D, H), backward.init(k2, D, H))`` from ``jax.random.split(key)``."""
    check_sizes(input_size=input_size, hidden_size=hidden_size)
    k1, k2 = jax.random.split(key)
    return BidirectionalParams(forward.init(k1, input_size, hidden_size), backward.init(k2, input_size, hidden_size))


def bidirectional(forward: Cell, backward: Cell, params: BidirectionalParams, xs: jax.Array, *,
                  length=None) -> jax.Array:
    """Both directions over one sequence ``xs (T, D)``: ``[h^fw_t, h^bw_t]`` (T, H_fw + H_bw).

    h^fw_t has read x_1..x_t, h^bw_t has read x_L..x_t (Schuster & Paliwal 1997): ``forward`` runs as
    :func:`unroll`, ``backward`` as ``unroll(..., reverse=True)``, each from its zero carry, both padded
    to ``length`` alike (steps past it are zero). Traceable; ``jax.vmap`` for a batch, and a
    :class:`Readout` on the result gives a bidirectional model's outputs.
    """
    hs_fw, _ = _unroll(forward, params.forward, xs, forward.initial_carry(params.forward), length=length)
    hs_bw, _ = _unroll(backward, params.backward, xs, backward.initial_carry(params.backward), reverse=True,
                       length=length)
    return jnp.concatenate([hs_fw, hs_bw], axis=-1)  # [h^fw_t, h^bw_t]
