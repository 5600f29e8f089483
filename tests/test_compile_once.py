"""Compiled once: a repeated call of a public entry point with new values of the same shapes traces nothing.

Traces are counted by JAX's own monitoring event for tracing a jitted function (``jax.monitoring``), so
the check fails if any call on the way re-traces (a fresh closure, a cell rebuilt with new identity, ...).
"""

import jax
import jax.numpy as jnp
import optax
import pytest

import rnnjax
from rnnjax import cells

TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
_traces = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: _traces.append(event) if event == TRACE_EVENT else None)


def traces_of(call) -> int:
    """How many jitted functions ``call()`` traced (0: every program came from the in-memory cache)."""
    before = len(_traces)
    jax.block_until_ready(call())
    return len(_traces) - before


T, D, H, O = 6, 2, 3, 2


def _data(seed):
    k = jax.random.PRNGKey(seed)
    xs = jax.random.normal(k, (T, D))
    return xs, jax.random.normal(jax.random.fold_in(k, 1), (T, O)), jnp.zeros(T, jnp.int32)


def _entry_points():
    """name -> call(seed): each call with new parameter values and new data of the same shapes."""
    vanilla, lstm = cells.vanilla("tanh"), cells.lstm()

    def rnn(seed):
        return rnnjax.init_rnn(jax.random.PRNGKey(seed), D, H, O)

    def lstm_model(seed):
        return rnnjax.init_model(lstm, jax.random.PRNGKey(seed), D, H, O)

    def call(name, seed):
        xs, ys, labels = _data(seed)
        p, m = rnn(seed), lstm_model(seed)
        carry = lstm.initial_carry(m.cell)
        return {
            "unroll": lambda: rnnjax.unroll(lstm, m.cell, xs, length=seed % T + 1),
            "predict": lambda: rnnjax.predict(lstm, m, xs),
            "sequence_loss": lambda: rnnjax.sequence_loss(lstm, m, xs, ys, loss="mse"),
            "rnn_forward": lambda: rnnjax.rnn_forward(p, xs),
            "loss_and_grad": lambda: rnnjax.loss_and_grad(p, xs, ys, loss="mse"),
            "bptt": lambda: rnnjax.bptt(p, xs, ys),
            "cell_loss_and_grad": lambda: rnnjax.cell_loss_and_grad(lstm, m, xs, ys, loss="mse"),
            "lyapunov_of": lambda: rnnjax.lyapunov_of(rnnjax.cell_step(lstm, m.cell), carry, xs, num=2),
            "lag_profile_of": lambda: rnnjax.lag_profile_of(rnnjax.cell_step(lstm, m.cell), carry, xs, carry),
            "jacobians_of": lambda: rnnjax.jacobians_of(rnnjax.cell_step(lstm, m.cell), carry, xs),
            "states_of": lambda: rnnjax.states_of(rnnjax.cell_step(lstm, m.cell), carry, xs),
            "step_jacobians": lambda: rnnjax.step_jacobians(p, xs),
            "lyapunov_spectrum": lambda: rnnjax.lyapunov_spectrum(p, xs),
            "lag_profile": lambda: rnnjax.lag_profile(p, xs, labels),
            "train": lambda: rnnjax.train(p, xs[None], ys[None], loss="mse", num_steps=2, learning_rate=0.1),
            "fit": lambda: rnnjax.fit(rnnjax.make_loss(vanilla, "mse"), rnnjax.ModelParams(p.cell, p.readout),
                                      (xs[None], ys[None]), OPTIMIZER, num_steps=2),
        }[name]()

    return call


OPTIMIZER = optax.sgd(0.1)  # one optax object: a fresh one is a new static argument and compiles again
NAMES = ["unroll", "predict", "sequence_loss", "rnn_forward", "loss_and_grad", "bptt", "cell_loss_and_grad",
         "lyapunov_of", "lag_profile_of", "jacobians_of", "states_of", "step_jacobians", "lyapunov_spectrum",
         "lag_profile", "train", "fit"]


@pytest.mark.parametrize("name", NAMES)
def test_a_repeated_call_with_new_values_traces_nothing(name):
    call = _entry_points()
    call(name, 0)  # first call: compiles (and builds its inputs)
    call(name, 1)  # warms the inputs' own small programs (init with a new key)
    assert traces_of(lambda: call(name, 2)) == 0


def test_the_counter_can_fail():
    """A fresh closure is a new static function: the same call traces again."""
    xs = _data(0)[0]
    step = lambda c, x: jnp.tanh(c + x.sum())  # noqa: E731
    rnnjax.states_of(step, jnp.zeros(3), xs)
    assert traces_of(lambda: rnnjax.states_of(lambda c, x: jnp.tanh(c + x.sum()), jnp.zeros(3), xs)) > 0
    assert traces_of(lambda: rnnjax.states_of(step, jnp.ones(3), xs)) == 0  # the same function: cached
