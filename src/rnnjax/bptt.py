"""Back-propagation through time (report §2.2): the report's ``bptt`` and ``loss_and_grad``, on the generic core.

The hand-written backward pass itself lives with the vanilla cell (:mod:`rnnjax.cells.vanilla`):
it is the ``jax.custom_vjp`` of the cell's whole-sequence path, so ``jax.grad`` of any loss built
on that cell -- :func:`rnnjax.make_loss`, :func:`rnnjax.fit`, :func:`rnnjax.train`, the sweeps --
runs it. The functions here are the report's entry points over it:

* :func:`bptt` -- the gradient of a loss given dL/do_t for every output (any per-step loss);
* :func:`loss_and_grad` -- a loss of :mod:`rnnjax.losses` and its gradient, for one sequence or
  the mean over a batch (whose backward pass contracts the batch, report §2.2).

``method`` picks the gradient: ``"bptt"`` (by hand), ``"autograd"`` (``jax.grad`` of the same
forward) or ``"auto"`` (:func:`resolve_method`: by hand on CPU). Measured on Experiment 1's shape
(B = 6,000, T = 20, H = 16) the hand BPTT is several times faster than ``jax.grad`` on CPU
(``benchmarks/bench_core.py``).
"""

from __future__ import annotations

from functools import partial

import jax

from rnnjax.activations import get_activation
from rnnjax.cells import RNNParams, vanilla
from rnnjax.cells.vanilla import METHODS, resolve_method
from rnnjax.forward import check_inputs, initial_state
from rnnjax.losses import check_targets, get_loss
from rnnjax.scan import batch_loss

__all__ = ["METHODS", "bptt", "loss_and_grad", "loss_and_grad_with_state", "resolve_method"]


@partial(jax.jit, static_argnames=("activation",))
def _bptt(params, xs, dL_do, h0, *, activation):
    def outputs(p):  # o_t = h_t W_ho + b_o (§1.2), one call for a batch
        return vanilla(activation, method="bptt").unroll(p, xs, h0, p.readout)[0]

    _, pullback = jax.vjp(outputs, params)
    return pullback(dL_do)[0]  # the hand backward pass of §2.2 (the cell's custom_vjp)


def bptt(params: RNNParams, xs: jax.Array, dL_doutputs: jax.Array, h0=None, *,
         activation: str = "tanh") -> RNNParams:
    """Hand-written BPTT (report §2.2): the gradient of a loss given its gradient w.r.t. every output.

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
    get_activation(activation)
    if dL_doutputs.shape != xs.shape[:-1] + (params.W_ho.shape[1],):
        raise ValueError(f"dL_doutputs must have shape {xs.shape[:-1] + (params.W_ho.shape[1],)}, "
                         f"got {tuple(dL_doutputs.shape)}")
    n = xs.shape[0] if batched else 1
    return _bptt(params, xs, dL_doutputs / n, initial_state(params, xs.shape[:-2], h0), activation=activation)


@partial(jax.jit, static_argnames=("loss", "activation", "method"))
def _loss_and_grad(params, xs, targets, h0, *, loss, activation, method):
    cell = vanilla(activation, method=method)
    value_and_grad = jax.value_and_grad(partial(batch_loss, cell, loss=loss), has_aux=True)
    (value, h_T), grads = value_and_grad(params, xs, targets, carry0=h0)  # the batch mean and its gradient
    return value, grads, h_T


def loss_and_grad_with_state(params: RNNParams, xs, targets, *, loss: str, activation: str = "tanh",
                             h0=None, method: str = "auto"):
    """As :func:`loss_and_grad`, also returning the final hidden state h_T ((H,) or (B, H))."""
    method = resolve_method(method, xs)
    get_loss(loss)
    get_activation(activation)
    check_inputs(params, xs, h0, batched=xs.ndim == 3)
    check_targets(loss, xs.shape[:-1] + (params.W_ho.shape[1],), targets)
    return _loss_and_grad(params, xs, targets, initial_state(params, xs.shape[:-2], h0), loss=loss,
                          activation=activation, method=method)


def loss_and_grad(params: RNNParams, xs: jax.Array, targets: jax.Array, *, loss: str,
                  activation: str = "tanh", h0=None, method: str = "auto"):
    """Loss and its gradient w.r.t. every parameter, for one sequence or a batch.

    ``jax.value_and_grad`` of :func:`rnnjax.make_loss`'s loss on the vanilla cell; on CPU its
    backward pass is the hand BPTT of report §2.2.

    Args:
      params: :class:`RNNParams`.
      xs: inputs (T, D), or a batch (B, T, D).
      targets: ``mse_last`` (O,), ``mse`` (T, O), ``xent`` (T,) integers -- with a leading B for a batch.
      loss: ``"mse_last"``, ``"mse"`` or ``"xent"`` (see :mod:`rnnjax.losses`).
      activation: ``"tanh"``, ``"sigmoid"``, ``"relu"`` or ``"linear"``.
      h0: initial state (H,) or (B, H); zeros when None.
      method: ``"bptt"`` (the hand backward pass of report §2.2), ``"autograd"`` (``jax.grad``) or
        ``"auto"`` (the default: the hand BPTT on CPU, ``jax.grad`` on accelerators, see
        :func:`resolve_method`).

    Returns:
      ``(loss_value, grads)``; for a batch, the batch-mean loss and batch-mean gradients. Jitted.
    """
    value, grads, _ = loss_and_grad_with_state(params, xs, targets, loss=loss, activation=activation,
                                               h0=h0, method=method)
    return value, grads
