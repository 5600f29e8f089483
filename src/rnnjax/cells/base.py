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

    A ``Cell`` is a tuple of functions: pass it as a static argument to ``jax.jit`` and build it
    once (two calls of a factory give two cells, which compile separately).
    """

    init: Callable[[jax.Array, int, int], Params]
    initial_carry: Callable[[Params], Carry]
    step: Callable[[Params, Carry, jax.Array], Carry]
    hidden: Callable[[Carry], jax.Array]


def identity(carry: jax.Array) -> jax.Array:
    """``hidden`` for cells whose carry is the hidden state itself (vanilla RNN, GRU)."""
    return carry
