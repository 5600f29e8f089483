"""rnnjax: pure-functional recurrent networks in JAX and the vanishing/exploding-gradient problem.

The public API, re-exported from the modules that define it (nothing is defined here). Modules
that pull in heavier dependencies stay behind their own import: ``rnnjax.data.prices`` (pandas),
``rnnjax.data.stooq`` (requests), ``rnnjax.sweeps`` (sharding), ``rnnjax.plots`` (matplotlib).
"""

from rnnjax.activations import ACTIVATIONS, Activation, get_activation
from rnnjax.analysis import (
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
    states_of,
    step_jacobians,
)
from rnnjax.bptt import bptt, loss_and_grad, loss_and_grad_with_state
from rnnjax.cells import RECURRENT_INITS, RNNParams, init_recurrent, init_rnn, rnn_cell, spectral_radius
from rnnjax.data.tasks import ADDING_BASELINE_MSE, adding_problem
from rnnjax.forward import rnn_forward
from rnnjax.gated import (
    GRUParams,
    LSTMCarry,
    LSTMParams,
    cell_forward,
    cell_loss_and_grad,
    flat_state,
    flat_step,
    gru_cell,
    gru_forward,
    gru_params_from_torch,
    init_cell,
    init_gru,
    init_lstm,
    lstm_cell,
    lstm_forward,
    lstm_params_from_torch,
    params_to_torch,
    train_cell,
)
from rnnjax.losses import LOSSES, get_loss
from rnnjax.train import (
    OPTIMIZERS,
    TrainHistory,
    describe_nonfinite,
    first_nonfinite_step,
    make_optimizer,
    optimize,
    spectral_norm,
    train,
)

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "Activation", "get_activation",
    "jacobians_of", "lag_profile", "lag_profile_of", "lag_slope", "last_step_state_grad", "log_lag_profile_of",
    "lyapunov_of", "lyapunov_spectrum", "product_log_singular_values", "report_bound", "rnn_step", "states_of",
    "step_jacobians",
    "bptt", "loss_and_grad", "loss_and_grad_with_state",
    "RECURRENT_INITS", "RNNParams", "init_recurrent", "init_rnn", "rnn_cell", "spectral_radius",
    "ADDING_BASELINE_MSE", "adding_problem",
    "rnn_forward",
    "GRUParams", "LSTMCarry", "LSTMParams", "cell_forward", "cell_loss_and_grad", "flat_state", "flat_step",
    "gru_cell", "gru_forward", "gru_params_from_torch", "init_cell", "init_gru", "init_lstm", "lstm_cell",
    "lstm_forward", "lstm_params_from_torch", "params_to_torch", "train_cell",
    "LOSSES", "get_loss",
    "OPTIMIZERS", "TrainHistory", "describe_nonfinite", "first_nonfinite_step", "make_optimizer", "optimize",
    "spectral_norm", "train",
]
