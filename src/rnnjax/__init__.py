"""rnnjax: pure-functional recurrent networks in JAX and the vanishing/exploding-gradient problem.

The public API, re-exported from the modules that define it (nothing is defined here).
"""

from rnnjax.activations import ACTIVATIONS, Activation, get_activation
from rnnjax.bptt import bptt, loss_and_grad, loss_and_grad_with_state
from rnnjax.cells import RECURRENT_INITS, RNNParams, init_recurrent, init_rnn, rnn_cell, spectral_radius
from rnnjax.forward import rnn_forward
from rnnjax.losses import LOSSES, get_loss
from rnnjax.train import (
    OPTIMIZERS,
    TrainHistory,
    describe_nonfinite,
    first_nonfinite_step,
    make_optimizer,
    spectral_norm,
    train,
)

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "Activation", "get_activation",
    "bptt", "loss_and_grad", "loss_and_grad_with_state",
    "RECURRENT_INITS", "RNNParams", "init_recurrent", "init_rnn", "rnn_cell", "spectral_radius",
    "rnn_forward",
    "LOSSES", "get_loss",
    "OPTIMIZERS", "TrainHistory", "describe_nonfinite", "first_nonfinite_step", "make_optimizer",
    "spectral_norm", "train",
]
