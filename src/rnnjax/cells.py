"""The vanilla RNN cell of report §1.2, in the report's row-vector convention.

    a_t = x_t W_xh + h_{t-1} W_hh + b_h          (report §1.2)
    h_t = phi_h(a_t)                              (report §1.2)
    o_t = h_t W_ho + b_o                          (report §1.2, phi_o = identity; losses add softmax)

Shapes: x_t (D,), h_t (H,), W_xh (D, H), W_hh (H, H), b_h (H,), W_ho (H, O), b_o (O,).
A step is a ``lax.scan`` body, ``(h_{t-1}, x_t) -> (h_t, (h_t, a_t))``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax._checks import check_choice, check_positive, check_positive_int
from rnnjax.activations import get_activation


class RNNParams(NamedTuple):
    """Parameters of a one-layer vanilla RNN with a linear read-out (a PyTree)."""

    W_xh: jax.Array  # (D, H) input -> hidden
    W_hh: jax.Array  # (H, H) hidden -> hidden (row convention: h_{t-1} W_hh)
    b_h: jax.Array  # (H,)
    W_ho: jax.Array  # (H, O) hidden -> output
    b_o: jax.Array  # (O,)


RECURRENT_INITS = ("gaussian", "spectral", "orthogonal", "identity")


def spectral_radius(W: jax.Array) -> jax.Array:
    """max_i |lambda_i(W)|, the spectral radius of a square matrix."""
    return jnp.max(jnp.abs(jnp.linalg.eigvals(W)))


def _orthogonal(key: jax.Array, n: int, dtype) -> jax.Array:
    """A Haar-random orthogonal (n, n) matrix: QR of a Gaussian with R's diagonal signs fixed (Mezzadri 2007)."""
    q, r = jnp.linalg.qr(jax.random.normal(key, (n, n), dtype))
    return q * jnp.sign(jnp.diagonal(r))[None, :]


def init_recurrent(key: jax.Array, hidden_size: int, *, rho=1.0, kind: str = "gaussian",
                   dtype=jnp.float32) -> jax.Array:
    """Initial W_hh (H, H) of one of :data:`RECURRENT_INITS`, scaled by ``rho``.

    * ``"gaussian"``   -- entries N(0, std 1/sqrt(H)) times rho (report §5; spectral radius ~ rho
      by the circular law, Girko 1984);
    * ``"spectral"``   -- the Gaussian rescaled so its spectral radius is exactly rho;
    * ``"orthogonal"`` -- rho Q with Q Haar-orthogonal, so W^T W = rho^2 I (Saxe et al. 2014);
    * ``"identity"``   -- rho I, the IRNN of Le, Jaitly & Hinton (2015).
    """
    check_choice("recurrent_init", kind, RECURRENT_INITS)
    check_positive_int("hidden_size", hidden_size)
    check_positive("rho", rho)
    rho = jnp.asarray(rho, dtype)
    if kind == "identity":
        return rho * jnp.eye(hidden_size, dtype=dtype)
    if kind == "orthogonal":
        return rho * _orthogonal(key, hidden_size, dtype)
    W = jax.random.normal(key, (hidden_size, hidden_size), dtype) / jnp.sqrt(hidden_size)
    if kind == "spectral":
        W = W / spectral_radius(W).astype(dtype)  # now max |lambda| = 1
    return rho * W


def init_rnn(key: jax.Array, input_size: int, hidden_size: int, output_size: int, *, rho=1.0,
             recurrent_init: str = "gaussian", input_std=None, output_std=None,
             dtype=jnp.float32) -> RNNParams:
    """Seeded initial :class:`RNNParams`.

    W_hh follows ``recurrent_init`` (see :func:`init_recurrent`). Input and output weights default
    to LeCun-normal scales, W_xh ~ N(0, std 1/sqrt(D)) and W_ho ~ N(0, std 1/sqrt(H)), which keep
    x_t W_xh and h_t W_ho at unit-order variance; ``input_std``/``output_std`` override them.
    Biases start at zero. ``rho`` may be a traced scalar, so ``jax.vmap`` sweeps over it.
    """
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                        ("output_size", output_size)):
        check_positive_int(name, value)
    k_xh, k_hh, k_ho = jax.random.split(key, 3)
    in_std = 1.0 / jnp.sqrt(input_size) if input_std is None else input_std
    out_std = 1.0 / jnp.sqrt(hidden_size) if output_std is None else output_std
    return RNNParams(
        W_xh=(in_std * jax.random.normal(k_xh, (input_size, hidden_size), dtype)).astype(dtype),
        W_hh=init_recurrent(k_hh, hidden_size, rho=rho, kind=recurrent_init, dtype=dtype),
        b_h=jnp.zeros((hidden_size,), dtype),
        W_ho=(out_std * jax.random.normal(k_ho, (hidden_size, output_size), dtype)).astype(dtype),
        b_o=jnp.zeros((output_size,), dtype),
    )


def rnn_cell(params: RNNParams, h_prev: jax.Array, x: jax.Array, *, activation: str = "tanh"):
    """One step: returns ``(h_t, a_t)`` for ``h_prev (..., H)`` and ``x (..., D)``."""
    a = x @ params.W_xh + h_prev @ params.W_hh + params.b_h  # a_t = x_t W_xh + h_{t-1} W_hh + b_h (§1.2)
    return get_activation(activation).phi(a), a  # h_t = phi_h(a_t) (§1.2)
