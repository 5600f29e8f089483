"""The RNN forward pass through ``lax.scan`` (report §1.2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax.activations import get_activation
from rnnjax.cells import RNNParams


def check_inputs(params: RNNParams, xs: jax.Array, h0=None, *, batched: bool = False) -> None:
    """Raise ``ValueError`` unless ``xs`` is (T, D) -- or (B, T, D) when ``batched`` -- and ``h0`` fits."""
    D, H = params.W_xh.shape
    want = "(B, T, D)" if batched else "(T, D)"
    if xs.ndim != (3 if batched else 2):
        raise ValueError(f"xs must have shape {want} with D={D}, got shape {tuple(xs.shape)}")
    if xs.shape[-1] != D:
        raise ValueError(f"input width mismatch: xs has D={xs.shape[-1]} features per step "
                         f"but W_xh expects D={D} (xs shape {tuple(xs.shape)})")
    if xs.shape[-2] < 1:
        raise ValueError("xs must hold at least one time step (T >= 1)")
    if h0 is not None:
        want_h = (xs.shape[0], H) if batched else (H,)
        if tuple(h0.shape) != want_h and tuple(h0.shape) != (H,):
            raise ValueError(f"h0 must have shape {want_h}, got {tuple(h0.shape)}")


def initial_state(params: RNNParams, batch_shape: tuple, h0=None) -> jax.Array:
    """h_0 (*batch_shape, H): ``h0`` broadcast to the batch, or zeros when ``h0`` is None."""
    shape = tuple(batch_shape) + (params.W_hh.shape[0],)
    if h0 is None:
        return jnp.zeros(shape, params.W_hh.dtype)
    return jnp.broadcast_to(h0, shape).astype(params.W_hh.dtype)


def rnn_states(params: RNNParams, xs: jax.Array, h0=None, *, activation: str = "tanh"):
    """Hidden states and pre-activations, time-major: ``xs (T, ..., D)`` -> ``hs, as (T, ..., H)``.

    Axes between T and D are batch axes (the scan's carry is ``(..., H)``). This is
    :func:`rnn_cell` with the input term x_t W_xh + b_h of every step done as one matmul
    before the scan, which leaves only h_{t-1} W_hh on the sequential path.
    """
    phi = get_activation(activation).phi
    xw = xs @ params.W_xh + params.b_h  # x_t W_xh + b_h for all t at once: (T, ..., H)

    def step(h_prev, xw_t):
        a = xw_t + h_prev @ params.W_hh  # a_t = x_t W_xh + h_{t-1} W_hh + b_h (§1.2)
        h = phi(a)  # h_t = phi_h(a_t) (§1.2)
        return h, (h, a)

    _, (hs, as_) = lax.scan(step, initial_state(params, xs.shape[1:-1], h0), xw)
    return hs, as_


def rnn_forward(params: RNNParams, xs: jax.Array, h0=None, *, activation: str = "tanh"):
    """Run the RNN over one sequence.

    Args:
      params: :class:`RNNParams`.
      xs: inputs (T, D).
      h0: initial hidden state (H,); zeros when None.
      activation: ``"tanh"``, ``"sigmoid"``, ``"relu"`` or ``"linear"``.

    Returns:
      ``(hs, outputs)``: hidden states h_1..h_T (T, H) and linear outputs o_t = h_t W_ho + b_o (T, O).
    """
    check_inputs(params, xs, h0)
    hs, _ = rnn_states(params, xs, h0, activation=activation)
    return hs, hs @ params.W_ho + params.b_o  # o_t = h_t W_ho + b_o (§1.2, phi_o = identity)
