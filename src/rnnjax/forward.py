"""The RNN forward pass through ``lax.scan`` (report §1.2).

Internally the states are stored *feature-major*: a hidden state is ``(H, *batch)`` and a
sequence of them ``(T, H, *batch)``, so that for a batch the batch is the minor (contiguous)
axis that XLA:CPU vectorises -- the recurrence is about twice as fast that way as with ``(B, H)``
rows. For one sequence (no batch axis) this is exactly the report's row layout ``(T, H)``.
In that layout the row-convention products are written with :func:`times` (v W) and
:func:`seq_times` (v_t W for every t), so the code still reads as the report's formulas.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax._checks import check_array
from rnnjax.activations import get_activation
from rnnjax.cells import RNNParams


def times(v: jax.Array, W: jax.Array) -> jax.Array:
    """``v W`` in the row convention for ``v`` stored feature-major: ``(F, *batch) -> (K, *batch)``."""
    return jnp.tensordot(W, v, axes=(0, 0))  # (v W)_k = sum_f v_f W_fk, for every batch column


def times_t(v: jax.Array, W_T: jax.Array) -> jax.Array:
    """``v W`` with ``W`` given transposed, ``W_T (K, F)``: ``(F, *batch) -> (K, *batch)``.

    It contracts W_T's minor (contiguous) axis: vmapped over many matrices (a sweep over runs) XLA:CPU
    runs this mat-vec ~1.4x faster than :func:`times`' contraction over the major axis (measured,
    ``benchmarks/bench_sweeps.py``). So ``delta W^T`` is ``times_t(delta, W)``, no transpose needed.
    """
    return jnp.tensordot(W_T, v, axes=(1, 0))  # (v W)_k = sum_f W_T[k, f] v_f


def seq_times(vs: jax.Array, W: jax.Array) -> jax.Array:
    """``v_t W`` for every step at once: ``(T, F, *batch) -> (T, K, *batch)``.

    For a batch this is one matmul batched over t (W broadcast along t): XLA:CPU runs it without
    transposing the (T, F, B) operand, which a plain contraction over the middle axis would do.
    """
    if vs.ndim == 2:
        return vs @ W
    W_t = jnp.broadcast_to(W.T, (vs.shape[0],) + W.T.shape)  # (T, K, F)
    return jnp.einsum("tkf,tf...->tk...", W_t, vs)


def to_feature_major(a: jax.Array) -> jax.Array:
    """``(*batch, T, F) -> (T, F, *batch)``: batch-first arrays to the internal layout."""
    nb = a.ndim - 2
    return jnp.transpose(a, (nb, nb + 1) + tuple(range(nb)))


def from_feature_major(a: jax.Array) -> jax.Array:
    """``(T, F, *batch) -> (*batch, T, F)``, the inverse of :func:`to_feature_major`."""
    return jnp.transpose(a, tuple(range(2, a.ndim)) + (0, 1))


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


def hidden_scan(params: RNNParams, xs_fm: jax.Array, h_init: jax.Array, phi) -> jax.Array:
    """h_1..h_T by ``lax.scan``, feature-major: ``xs_fm (T, D, *batch)``, ``h_init (H, *batch)`` -> ``(T, H, *batch)``.

    The scan body is :func:`rnnjax.rnn_cell`'s two lines. The input term x_t W_xh + b_h does not
    depend on the recursion: for one sequence it is done for all t before the scan (one (T, D) x
    (D, H) matmul; a step on short vectors costs per operation), for a batch it stays in the step
    (a (T, H, B) array of input terms would cost more memory traffic than the product it saves).
    """
    batched = h_init.ndim > 1
    b_h = params.b_h.reshape(params.b_h.shape + (1,) * (h_init.ndim - 1))  # (H, 1...): one column per example
    inputs = xs_fm if batched else xs_fm @ params.W_xh + params.b_h  # x_t (batch) or x_t W_xh + b_h (all t)

    W_hh_T = params.W_hh.T  # once, outside the loop: the step contracts its minor axis (see times_t)

    def step(h_prev, u_t):
        xw_t = times(u_t, params.W_xh) + b_h if batched else u_t  # x_t W_xh + b_h
        a = xw_t + times_t(h_prev, W_hh_T)  # a_t = x_t W_xh + h_{t-1} W_hh + b_h (§1.2)
        h = phi(a)  # h_t = phi_h(a_t) (§1.2)
        return h, h

    _, hs = lax.scan(step, h_init, inputs)
    return hs


def rnn_states(params: RNNParams, xs: jax.Array, h0=None, *, activation: str = "tanh"):
    """Hidden states and pre-activations, time-major: ``xs (T, ..., D)`` -> ``hs, as (T, ..., H)``.

    Axes between T and D are batch axes. The pre-activations are recomputed from the states after
    the scan, a_t = x_t W_xh + h_{t-1} W_hh + b_h for all t in one matmul.
    """
    phi = get_activation(activation).phi
    h_init = initial_state(params, xs.shape[1:-1], h0)
    hs = jnp.moveaxis(hidden_scan(params, jnp.moveaxis(xs, -1, 1), jnp.moveaxis(h_init, -1, 0), phi), 1, -1)
    h_prev = jnp.concatenate([h_init[None], hs[:-1]])  # h_{t-1} for t = 1..T
    as_ = xs @ params.W_xh + h_prev @ params.W_hh + params.b_h  # a_t = x_t W_xh + h_{t-1} W_hh + b_h (§1.2)
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
    hs = hidden_scan(params, xs, initial_state(params, (), h0), get_activation(activation).phi)
    return hs, hs @ params.W_ho + params.b_o  # o_t = h_t W_ho + b_o (§1.2, phi_o = identity)
