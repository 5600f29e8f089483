"""Recurrent cells behind one protocol, :class:`Cell`: one module per cell, and the registry of CLI names.

* :func:`vanilla` -- the report's RNN (§1.2), h_t = phi(x_t W_xh + h_{t-1} W_hh + b_h);
* :func:`lstm` -- the LSTM with a forget gate, carry (h, c);
* :func:`gru` -- the GRU in PyTorch's form;
* :func:`stack` -- layers of cells as one cell.

A new cell is one new module with a factory returning a :class:`Cell`; :data:`CELLS` maps the
experiments' ``--cell`` names to factories and is the only place a cell is chosen by name.
"""

import inspect

from rnnjax._checks import check_choice
from rnnjax.cells.base import Cell
from rnnjax.cells.combinators import StackParams, stack
from rnnjax.cells.gru import GRUParams, gru, gru_cell
from rnnjax.cells.init import RECURRENT_INITS, init_recurrent, spectral_radius
from rnnjax.cells.lstm import LSTMCarry, LSTMParams, lstm, lstm_cell
from rnnjax.cells.vanilla import RNNParams, VanillaParams, init_rnn, rnn_cell, vanilla

CELLS = {"rnn": vanilla, "lstm": lstm, "gru": gru}


def get_cell(name: str, **options) -> Cell:
    """The :class:`Cell` that :data:`CELLS` names ``name``, built with ``options`` (e.g. ``activation="relu"``)."""
    check_choice("cell", name, CELLS)
    factory = CELLS[name]
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"cell {name!r} takes no option {', '.join(map(repr, unknown))}; "
                         f"its options are {sorted(accepted)}")
    return factory(**options)


__all__ = [
    "CELLS", "Cell", "get_cell",
    "StackParams", "stack",
    "GRUParams", "gru", "gru_cell",
    "RECURRENT_INITS", "init_recurrent", "spectral_radius",
    "LSTMCarry", "LSTMParams", "lstm", "lstm_cell",
    "RNNParams", "VanillaParams", "init_rnn", "rnn_cell", "vanilla",
]
