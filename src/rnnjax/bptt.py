"""Back-propagation through time, written out by hand (report §2.2), and ``loss_and_grad``.

The whole backward pass of the vanilla RNN, in the report's row convention::

    e_t       = (dL/do_t) W_ho^T                      output loss at t, pulled back to h_t
    dL/dh_t   = e_t + delta_{t+1} W_hh^T              plus what flows back from the future
    delta_t   = dL/dh_t ⊙ phi'(a_t)                   the report's hidden error
    dL/dW_xh  = sum_t x_t^T delta_t,   dL/dW_hh = sum_t h_{t-1}^T delta_t,   dL/db_h = sum_t delta_t
    dL/dW_ho  = sum_t h_t^T dL/do_t,   dL/db_o  = sum_t dL/do_t

Only the delta recursion is sequential (a reverse ``lax.scan``); the weight gradients are then
single contractions over time -- and, for a batch, over the batch too, so no per-example weight
gradient is ever stored.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax._checks import check_choice
from rnnjax.activations import get_activation
from rnnjax.cells import RNNParams
from rnnjax.forward import check_inputs, initial_state, rnn_forward, rnn_states
from rnnjax.losses import check_targets, get_loss

METHODS = ("bptt", "autograd")


def _bptt_time_major(params: RNNParams, xs, hs, as_, h0, dL_do, dphi) -> RNNParams:
    """Sums over time (and batch) of the §2.2 gradients; all arrays time-major (T, ..., .)."""
    e = dL_do @ params.W_ho.T  # e_t = (dL/do_t) W_ho^T, the output's share of dL/dh_t
    d = dphi(as_)  # phi'(a_t)

    def step(delta_next, e_d):
        e_t, d_t = e_d
        delta = (e_t + delta_next @ params.W_hh.T) * d_t  # delta_t = (e_t + delta_{t+1} W_hh^T) ⊙ phi'(a_t) (§2.2)
        return delta, delta

    _, deltas = lax.scan(step, jnp.zeros_like(hs[0]), (e, d), reverse=True)
    h_prev = jnp.concatenate([h0[None], hs[:-1]])  # h_{t-1} for t = 1..T
    contract = lambda u, v: jnp.einsum("t...i,t...j->ij", u, v)  # sum over t and batch of u_t^T v_t
    return RNNParams(
        W_xh=contract(xs, deltas),  # dL/dW_xh = sum_t x_t^T delta_t (§2.2)
        W_hh=contract(h_prev, deltas),  # dL/dW_hh = sum_t h_{t-1}^T delta_t (§2.2)
        b_h=deltas.reshape(-1, deltas.shape[-1]).sum(0),  # dL/db_h = sum_t delta_t
        W_ho=contract(hs, dL_do),  # dL/dW_ho = sum_t h_t^T dL/do_t (§2.2)
        b_o=dL_do.reshape(-1, dL_do.shape[-1]).sum(0),  # dL/db_o = sum_t dL/do_t
    )


def _time_major(a):
    return jnp.moveaxis(a, -2, 0)  # (..., T, F) -> (T, ..., F)


def bptt(params: RNNParams, xs: jax.Array, dL_doutputs: jax.Array, h0=None, *,
         activation: str = "tanh") -> RNNParams:
    """Hand-written BPTT: the gradient of a loss given its gradient w.r.t. every output.

    Args:
      params: :class:`RNNParams`.
      xs: inputs (T, D), or a batch (B, T, D).
      dL_doutputs: dL/do_t for every step, (T, O) or (B, T, O); any per-step loss plugs in.
      h0: initial state (H,) or (B, H); zeros when None.
      activation: the hidden non-linearity of the forward pass.

    Returns:
      :class:`RNNParams` of gradients; for a batch, the batch mean of the per-sequence gradients.
    """
    batched = xs.ndim == 3
    check_inputs(params, xs, h0, batched=batched)
    if dL_doutputs.shape != xs.shape[:-1] + (params.W_ho.shape[1],):
        raise ValueError(f"dL_doutputs must have shape {xs.shape[:-1] + (params.W_ho.shape[1],)}, "
                         f"got {tuple(dL_doutputs.shape)}")
    grads, _ = _bptt_from_output_grad(params, _time_major(xs), h0, activation,
                                      lambda outputs: (None, _time_major(dL_doutputs)))
    return jax.tree.map(lambda g: g / xs.shape[0], grads) if batched else grads


def _bptt_from_output_grad(params, xs_tm, h0, activation, output_grad):
    """Forward, ``output_grad(outputs) -> (aux, dL/do)``, then the hand backward pass (time-major)."""
    act = get_activation(activation)
    hs, as_ = rnn_states(params, xs_tm, h0, activation=activation)
    aux, dL_do = output_grad(hs @ params.W_ho + params.b_o)  # o_t = h_t W_ho + b_o (§1.2)
    h_init = initial_state(params, xs_tm.shape[1:-1], h0)
    return _bptt_time_major(params, xs_tm, hs, as_, h_init, dL_do, act.dphi), (aux, hs[-1])


def loss_and_grad_with_state(params: RNNParams, xs, targets, *, loss: str, activation: str = "tanh",
                             h0=None, method: str = "bptt"):
    """As :func:`loss_and_grad`, also returning the final hidden state h_T ((H,) or (B, H))."""
    check_choice("method", method, METHODS)
    spec = get_loss(loss)
    get_activation(activation)
    batched = xs.ndim == 3
    check_inputs(params, xs, h0, batched=batched)
    check_targets(loss, xs.shape[:-1] + (params.W_ho.shape[1],), targets)
    n = xs.shape[0] if batched else 1

    if method == "bptt":
        def output_grad(outputs_tm):
            outputs = jnp.moveaxis(outputs_tm, 0, -2)  # back to (..., T, O)
            value = jnp.sum(spec.value(outputs, targets)) / n  # batch-mean loss
            return value, _time_major(spec.grad(outputs, targets)) / n  # d(mean L)/do

        grads, (value, h_last) = _bptt_from_output_grad(params, _time_major(xs), h0, activation,
                                                        output_grad)
        return value, grads, h_last

    def one(p, x, y, h):
        hs, outputs = rnn_forward(p, x, h, activation=activation)
        return spec.value(outputs, y), hs[-1]

    def mean_loss(p):
        if not batched:
            return one(p, xs, targets, h0)
        h_axis = None if h0 is None or h0.ndim == 1 else 0
        values, h_last = jax.vmap(one, in_axes=(None, 0, 0, h_axis))(p, xs, targets, h0)
        return jnp.mean(values), h_last

    (value, h_last), grads = jax.value_and_grad(mean_loss, has_aux=True)(params)
    return value, grads, h_last


def loss_and_grad(params: RNNParams, xs: jax.Array, targets: jax.Array, *, loss: str,
                  activation: str = "tanh", h0=None, method: str = "bptt"):
    """Loss and its gradient w.r.t. every parameter, for one sequence or a batch.

    Args:
      params: :class:`RNNParams`.
      xs: inputs (T, D), or a batch (B, T, D).
      targets: ``mse_last`` (O,), ``mse`` (T, O), ``xent`` (T,) integers -- with a leading B for a batch.
      loss: ``"mse_last"``, ``"mse"`` or ``"xent"`` (see :mod:`rnnjax.losses`).
      activation: ``"tanh"``, ``"sigmoid"``, ``"relu"`` or ``"linear"``.
      h0: initial state (H,) or (B, H); zeros when None.
      method: ``"bptt"`` (the hand backward pass of report §2.2) or ``"autograd"`` (``jax.grad``).

    Returns:
      ``(loss_value, grads)``; for a batch, the batch-mean loss and batch-mean gradients.
    """
    value, grads, _ = loss_and_grad_with_state(params, xs, targets, loss=loss, activation=activation,
                                               h0=h0, method=method)
    return value, grads
