"""The report's forward pass of the vanilla RNN (report §1.2), on the generic core.

:func:`rnn_forward` is :func:`rnnjax.unroll` of the vanilla cell (:func:`rnnjax.cells.vanilla`,
whose whole-sequence path runs the scan) followed by the read-out; this module adds the input
checks for the report's :class:`rnnjax.RNNParams` that every vanilla entry point shares.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from rnnjax._checks import check_array
from rnnjax.activations import get_activation
from rnnjax.cells import RNNParams, rnn_cell, vanilla
from rnnjax.scan import _unroll, readout


def check_params(params: RNNParams) -> None:
    """Raise ``ValueError`` naming the fields unless every parameter is an array, all of one dtype, with
    shapes that fit together: W_xh (D, H), W_hh (H, H), b_h (H,), W_ho (H, O), b_o (O,)."""
    for name, value in zip(params._fields, params, strict=True):
        check_array(f"params.{name}", value)
    dtypes = {name: str(v.dtype) for name, v in zip(params._fields, params, strict=True)}
    if len(set(dtypes.values())) > 1:
        raise ValueError(f"the parameters mix dtypes ({', '.join(f'{k} {v}' for k, v in dtypes.items())}); "
                         f"convert them to one, e.g. jax.tree.map(lambda a: a.astype('float32'), params)")
    shapes = {name: tuple(v.shape) for name, v in zip(params._fields, params, strict=True)}
    if len(shapes["W_xh"]) != 2:
        raise ValueError(f"params.W_xh must be a matrix (D, H), got shape {shapes['W_xh']}")
    D, H = shapes["W_xh"]
    O = shapes["W_ho"][-1] if len(shapes["W_ho"]) == 2 else None
    want = {"W_xh": (D, H), "W_hh": (H, H), "b_h": (H,), "W_ho": (H, O), "b_o": (O,)}
    bad = [f"{k} {shapes[k]} (want {want[k]})" for k in params._fields if shapes[k] != want[k]]
    if bad:
        raise ValueError(f"parameter shapes do not fit together with W_xh {shapes['W_xh']} (D = {D}, H = {H}"
                         f"{'' if O is None else f', O = {O}'}): " + "; ".join(bad))


def check_inputs(params: RNNParams, xs: jax.Array, h0=None, *, batched: bool = False) -> None:
    """Raise ``ValueError`` unless the parameters fit together, ``xs`` is an array (T, D) -- or (B, T, D)
    when ``batched`` -- of the parameters' dtype, and ``h0`` fits."""
    check_params(params)
    check_array("xs", xs)
    D, H = params.W_xh.shape
    want = "(B, T, D)" if batched else "(T, D)"
    if xs.ndim != (3 if batched else 2):
        raise ValueError(f"xs must have shape {want} with D={D}, got shape {tuple(xs.shape)}")
    if xs.shape[-1] != D:
        raise ValueError(f"input width mismatch: xs has D={xs.shape[-1]} features per step "
                         f"but W_xh expects D={D} (xs shape {tuple(xs.shape)})")
    if xs.shape[-2] < 1:
        raise ValueError("xs must hold at least one time step (T >= 1)")
    dtype = params.W_xh.dtype
    if jnp.issubdtype(xs.dtype, jnp.floating) and jax.dtypes.canonicalize_dtype(xs.dtype) != dtype:
        raise ValueError(f"xs is {xs.dtype} but the parameters are {dtype}; convert one of them "
                         f"(e.g. xs.astype({dtype.name!r}))")
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
    """Hidden states and pre-activations, time-major: ``xs (T, ..., D)`` -> ``hs, as (T, ..., H)``. Traceable.

    Axes between T and D are batch axes. The pre-activations are recomputed from the states,
    a_t = x_t W_xh + b_h + h_{t-1} W_hh for all t.
    """
    h_init = initial_state(params, xs.shape[1:-1], h0)
    hs, _ = vanilla(activation).unroll(params, jnp.moveaxis(xs, 0, -2), h_init)  # the cell's whole-sequence path
    hs = jnp.moveaxis(hs, -2, 0)
    h_prev = jnp.concatenate([h_init[None], hs[:-1]])  # h_{t-1} for t = 1..T
    return hs, rnn_cell(params, h_prev, xs, activation=activation)[1]  # a_t (§1.2)


@partial(jax.jit, static_argnames=("activation",))
def _rnn_forward(params, xs, h0, *, activation):
    hs, _ = _unroll(vanilla(activation), params.cell, xs, h0)  # h_t = phi(x_t W_xh + b_h + h_{t-1} W_hh) (§1.2)
    return hs, readout(params.readout, hs)  # o_t = h_t W_ho + b_o (§1.2, phi_o = identity)


def rnn_forward(params: RNNParams, xs: jax.Array, h0=None, *, activation: str = "tanh"):
    """Run the RNN over one sequence: :func:`rnnjax.unroll` of the vanilla cell, then the read-out.

    Args:
      params: :class:`RNNParams`.
      xs: inputs (T, D).
      h0: initial hidden state (H,); zeros when None.
      activation: ``"tanh"``, ``"sigmoid"``, ``"relu"`` or ``"linear"``.

    Returns:
      ``(hs, outputs)``: hidden states h_1..h_T (T, H) and linear outputs o_t = h_t W_ho + b_o (T, O).
      Jitted: a repeated call compiles nothing.
    """
    check_inputs(params, xs, h0)
    get_activation(activation)
    return _rnn_forward(params, xs, initial_state(params, (), h0), activation=activation)
