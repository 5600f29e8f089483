"""The cell protocol: one recurrent step as four pure functions, with any pytree as parameters and carry.

Every generic tool of rnnjax -- :func:`rnnjax.unroll`, the losses and :func:`rnnjax.fit`, the
sweeps, Jacobians, lag profiles and Lyapunov spectra of :mod:`rnnjax.analysis` -- is written once
against this protocol, so a new cell is one new file (see ``docs/tutorial.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

Params = Any  # any pytree of arrays
Carry = Any  # any pytree of arrays


class Cell(NamedTuple):
    """A recurrent cell: ``carry_t = step(params, carry_{t-1}, x_t)``, read out through ``hidden(carry_t)``.

    Attributes:
      init: ``init(key, input_size, hidden_size) -> params`` (any pytree).
      initial_carry: ``initial_carry(params) -> carry`` (any pytree; zeros for the built-ins).
      step: ``step(params, carry, x) -> carry`` for one time step, ``x`` of shape (D,).
      hidden: ``hidden(carry) -> h`` (H,), what a read-out sees (``h`` of an LSTM's ``(h, c)``).
      unroll: optional, a faster whole-sequence path ``unroll(params, xs (*batch, T, D), carry0 (*batch, ...),
        readout=None) -> (hs (*batch, T, H), carry_T)`` equal to scanning ``step`` (e.g. the input
        projections of every step hoisted out of the scan, or a hand-written gradient as a
        ``jax.custom_vjp``: the vanilla cell's BPTT of report §2.2); given a :class:`rnnjax.Readout`
        it returns the read-outs y_t = h_t W_ho + b_o (*batch, T, O) instead of hs, computed in
        whatever layout the cell keeps its states. :func:`rnnjax.unroll` and the losses use it when
        present, for one sequence and, without ``jax.vmap``, for a batch.

    A ``Cell`` is a tuple of functions, a static argument of every jitted entry point: build it once,
    or give its functions value equality (the built-in factories do: ``cells.vanilla("tanh")`` twice
    gives equal cells), else each new cell compiles again.
    """

    init: Callable[[jax.Array, int, int], Params]
    initial_carry: Callable[[Params], Carry]
    step: Callable[[Params, Carry, jax.Array], Carry]
    hidden: Callable[[Carry], jax.Array]
    unroll: Callable[..., tuple[jax.Array, Carry]] | None = None


def identity(carry: jax.Array) -> jax.Array:
    """``hidden`` for cells whose carry is the hidden state itself (vanilla RNN, GRU)."""
    return carry

