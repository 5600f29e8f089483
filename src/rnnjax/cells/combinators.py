"""Cells built from cells: :func:`stack`, layers of cells run as one cell.

A stack of L cells reads x_t into layer 1, each layer's hidden state into the next, and shows the
last layer's hidden state to a read-out::

    carry^1_t = cell_1.step(p_1, carry^1_{t-1}, x_t)
    carry^l_t = cell_l.step(p_l, carry^l_{t-1}, hidden_{l-1}(carry^{l-1}_t))      l = 2..L
    h_t       = hidden_L(carry^L_t)

Its carry is the tuple of the layers' carries, its parameters a :class:`StackParams` of theirs.
When every layer has a whole-sequence path (``Cell.unroll``), so does the stack: each layer runs
over the whole sequence in turn (equal to the step-by-step recursion, since layer l at step t
needs only layer l-1 at steps <= t).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax

from rnnjax.cells.base import Cell


class StackParams(NamedTuple):
    """The layers' parameters, first layer first (a PyTree)."""

    layers: tuple


@dataclass(frozen=True)
class _Part:
    """One of the stack's functions (``part``), a value: equal stacks of equal cells compile once."""

    cells: tuple
    part: str

    def __call__(self, *args):
        return getattr(self, "_" + self.part)(*args)

    def _init(self, key, input_size, hidden_size) -> StackParams:
        keys = jax.random.split(key, len(self.cells))  # layer l draws from the l-th split
        sizes = [input_size] + [hidden_size] * (len(self.cells) - 1)  # layer 1 reads x (D), the rest h (H)
        return StackParams(tuple(c.init(k, d, hidden_size) for c, k, d in zip(self.cells, keys, sizes, strict=True)))

    def _initial_carry(self, params: StackParams) -> tuple:
        return tuple(c.initial_carry(p) for c, p in zip(self.cells, params.layers, strict=True))

    def _step(self, params: StackParams, carry: tuple, x):
        new = []
        for cell, p, c in zip(self.cells, params.layers, carry, strict=True):
            c = cell.step(p, c, x)  # carry^l_t = step_l(p_l, carry^l_{t-1}, input of layer l)
            new.append(c)
            x = cell.hidden(c)  # layer l's hidden state feeds layer l + 1
        return type(carry)(new)

    def _hidden(self, carry: tuple):
        return self.cells[-1].hidden(carry[-1])  # h_t = hidden_L(carry^L_t)

    def _unroll(self, params: StackParams, xs, carry0: tuple, readout=None):
        finals, last = [], len(self.cells) - 1
        for l, (cell, p, c) in enumerate(zip(self.cells, params.layers, carry0, strict=True)):
            # layer l over the whole sequence: its hs are layer l + 1's inputs; the last one applies the read-out
            xs, c_T = cell.unroll(p, xs, c, readout if l == last else None)
            finals.append(c_T)
        return xs, type(carry0)(finals)


def stack(cells) -> Cell:
    """Layers of cells as one :class:`rnnjax.Cell` (module docstring). ``cells``: a sequence of cells, first
    layer first; layer 1 reads the inputs (D), every other layer the previous layer's hidden state (H).
    ``init(key, D, H)`` gives every layer H hidden units. Equal lists of equal cells give equal stacks."""
    cells = tuple(cells)
    if not cells or not all(isinstance(c, Cell) for c in cells):
        raise ValueError(f"stack needs a non-empty sequence of rnnjax.Cell, got {cells!r}")
    part = lambda name: _Part(cells, name)
    unroll = part("unroll") if all(c.unroll is not None for c in cells) else None
    return Cell(part("init"), part("initial_carry"), part("step"), part("hidden"), unroll)
