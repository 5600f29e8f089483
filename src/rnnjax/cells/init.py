"""Weight initialisers shared by the cells: the recurrent matrix W_hh (report §5) and its per-gate blocks."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rnnjax._checks import check_choice, check_positive_finite, check_positive_int

RECURRENT_INITS = ("gaussian", "spectral", "orthogonal", "identity")


def spectral_radius(W: jax.Array) -> jax.Array:
    """max_i |lambda_i(W)|, the spectral radius of a square matrix, exact at any scale.

    rho(W) = m rho(W / m) with m = max_ij |W_ij| (eigenvalues scale linearly), so the eigensolver
    sees entries of order one: a 1e-30-scaled matrix keeps its radius instead of the solver's
    absolute floor (~1e-12). The zero matrix has radius 0.
    """
    m = jnp.max(jnp.abs(W))
    scale = jnp.where(m > 0, m, 1.0).astype(W.dtype)
    return scale * jnp.max(jnp.abs(jnp.linalg.eigvals(W / scale)))  # rho(W) = m rho(W/m)


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
    check_positive_finite("rho", rho)  # every entry, for arrays too; traced values pass through
    rho = jnp.asarray(rho, dtype)
    if kind == "identity":
        return rho * jnp.eye(hidden_size, dtype=dtype)
    if kind == "orthogonal":
        return rho * _orthogonal(key, hidden_size, dtype)
    W = jax.random.normal(key, (hidden_size, hidden_size), dtype) / jnp.sqrt(hidden_size)
    if kind == "spectral":
        W = W / spectral_radius(W).astype(dtype)  # now max |lambda| = 1
    return rho * W


def gate_blocks(key: jax.Array, hidden_size: int, n_gates: int, kind: str, dtype) -> jax.Array:
    """(H, n_gates * H): one independent :func:`init_recurrent` matrix (rho = 1) per gate, side by side."""
    blocks = jax.vmap(lambda k: init_recurrent(k, hidden_size, rho=1.0, kind=kind, dtype=dtype))(
        jax.random.split(key, n_gates))  # (n_gates, H, H)
    return jnp.concatenate(list(blocks), axis=1)  # [W_h1 | W_h2 | ...]


def scaled_normal(key: jax.Array, shape: tuple, fan_in: int, dtype) -> jax.Array:
    """N(0, std 1/sqrt(fan_in)) entries (LeCun normal): keeps x W at unit-order variance."""
    return (jax.random.normal(key, shape, dtype) / jnp.sqrt(fan_in)).astype(dtype)
