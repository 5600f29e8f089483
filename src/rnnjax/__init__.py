"""rnnjax: pure-functional recurrent networks in JAX and the vanishing/exploding-gradient problem.

The public API, re-exported from the modules that define it (nothing is defined here). Modules
that pull in heavier dependencies stay behind their own import: ``rnnjax.data.prices`` (pandas),
``rnnjax.data.stooq`` (requests), ``rnnjax.plots`` (matplotlib).
"""

from rnnjax import cells, interop
from rnnjax.activations import ACTIVATIONS, get_activation
from rnnjax.analysis import (
    cell_step,
    jacobians_of,
    lag_profile,
    lag_profile_of,
    lag_slope,
    last_step_state_grad,
    log_lag_profile_of,
    lyapunov_of,
    lyapunov_spectrum,
    product_log_singular_values,
    report_bound,
    rnn_step,
    state_grads_of,
    states_of,
    step_jacobians,
)
from rnnjax.bptt import bptt, loss_and_grad
from rnnjax.cells import (
    RECURRENT_INITS,
    Cell,
    GRUParams,
    LSTMCarry,
    LSTMParams,
    RNNParams,
    VanillaParams,
    init_recurrent,
    init_rnn,
    rnn_cell,
    spectral_radius,
)
from rnnjax.flossing import (
    FlossHistory,
    floss,
    flossing_loss,
    flossing_regularizer,
    spectrum_monitor,
)
from rnnjax.forward import rnn_forward
from rnnjax.interop import gru_params_from_torch, lstm_params_from_torch, params_to_torch, rnn_params_from_torch
from rnnjax.scan import (
    BidirectionalParams,
    ModelParams,
    Readout,
    batch_loss,
    bidirectional,
    cell_loss_and_grad,
    init_bidirectional,
    init_model,
    make_loss,
    predict,
    sequence_loss,
    unroll,
)
from rnnjax.sweeps import load_sweep, sweep
from rnnjax.train import (
    FitHistory,
    FitState,
    TrainHistory,
    describe_nonfinite,
    first_nonfinite_step,
    fit,
    make_optimizer,
    train,
)

__version__ = "0.3.0"

__all__ = [
    "cells", "interop",
    "ACTIVATIONS", "get_activation",
    "cell_step", "jacobians_of", "lag_profile", "lag_profile_of", "lag_slope", "last_step_state_grad",
    "log_lag_profile_of", "lyapunov_of", "lyapunov_spectrum", "product_log_singular_values", "report_bound", "rnn_step",
    "state_grads_of", "states_of", "step_jacobians",
    "bptt", "loss_and_grad",
    "RECURRENT_INITS", "Cell", "GRUParams", "LSTMCarry", "LSTMParams", "RNNParams", "VanillaParams",
    "init_recurrent", "init_rnn", "rnn_cell", "spectral_radius",
    "FlossHistory", "floss", "flossing_loss", "flossing_regularizer", "spectrum_monitor",
    "rnn_forward",
    "gru_params_from_torch", "lstm_params_from_torch", "params_to_torch", "rnn_params_from_torch",
    "BidirectionalParams", "ModelParams", "Readout", "batch_loss", "bidirectional", "cell_loss_and_grad",
    "init_bidirectional", "init_model", "make_loss", "predict", "sequence_loss", "unroll",
    "load_sweep", "sweep",
    "FitHistory", "FitState", "TrainHistory", "describe_nonfinite", "first_nonfinite_step", "fit", "make_optimizer",
    "train",
]
