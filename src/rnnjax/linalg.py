"""Linear algebra of training records: the spectral norm ||A||_2 exactly (SVD) or by warm-started Lanczos.

* :func:`spectral_norm` -- sigma_max by LAPACK's SVD;
* :func:`lanczos_spectral_norm` -- the same by a few Lanczos steps on A^T A, LAPACK-free (so a
  program holding it vmaps and shards over every host device), warm-started from the last vector;
* :func:`spectral_norm_record` -- a per-step recorder of ||dL/dW||_2 for any weight a user names,
  in the stateful form ``record(params, grads, state) -> (values, state)`` of
  :func:`rnnjax.train.run_steps` (``record_state=``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax


def spectral_norm(A: jax.Array) -> jax.Array:
    """||A||_2 = sigma_max(A), the largest singular value of a matrix (m, n), exactly (LAPACK SVD).

    Its cost, measured for dL/dW_hh at H = 50: ~0.12 ms a step, about 40% of an Experiment 2
    training step. Cheaper exact forms were not cheaper here: sqrt(eigvalsh(A^T A)[-1]) was 2x
    slower, Householder tridiagonalisation plus bisection for the top eigenvalue 1.6x faster per
    call but +0.5 s of compile time per program, more than a 200-step run saves.
    """
    return jnp.linalg.svd(A, compute_uv=False)[0]


LANCZOS_STEPS = 12  # Lanczos steps per estimate (see lanczos_spectral_norm for the measured error)
RITZ_SQUARINGS = 5  # T^(2^5): enough for a warm-start vector; the eigenvalue itself gets TOP_SQUARINGS
TOP_SQUARINGS = 24  # T^(2^24): every competitor of the top eigenvalue damped by (lambda_2 / lambda_1)^(2^24)


def _squarings(T: jax.Array, n: int) -> jax.Array:
    """T^(2^n) up to a positive factor, for a small symmetric T (k, k): n squarings, each rescaled to max 1."""
    scale = lambda X: X / jnp.maximum(jnp.max(jnp.abs(X)), jnp.finfo(X.dtype).tiny)
    return lax.fori_loop(0, n, lambda _, X: scale(X @ X), scale(T))


def _dominant_vector(X: jax.Array) -> jax.Array:
    """The unit column of largest norm of X ~ c y_1 y_1^T: y_1 up to sign."""
    y = X[:, jnp.argmax(jnp.sum(X * X, axis=0))]
    return y / jnp.maximum(jnp.linalg.norm(y), jnp.finfo(X.dtype).tiny)


def _tridiagonal(alphas: jax.Array, betas: jax.Array) -> jax.Array:
    """The Lanczos matrix T = tridiag(beta, alpha, beta) (k, k) from alpha (k,) and beta (k,) (the last unused)."""
    off = betas[:-1]
    return jnp.diag(alphas) + jnp.diag(off, 1) + jnp.diag(off, -1)


def top_eigenvalue_tridiagonal(alphas: jax.Array, betas: jax.Array) -> jax.Array:
    """The largest eigenvalue of the positive semi-definite Lanczos matrix tridiag(beta, alpha, beta), LAPACK-free.

    theta = y^T T y, y the dominant column of T^(2^TOP_SQUARINGS) (the power method by repeated squaring;
    the Rayleigh quotient of a unit vector never exceeds lambda_max, Golub & Van Loan §8.2.1). Works on
    any leading batch axes of ``alphas``/``betas`` (..., k) by ``jax.vmap``.
    """
    if alphas.ndim > 1:
        return jax.vmap(top_eigenvalue_tridiagonal)(alphas, betas)
    T = _tridiagonal(alphas, betas)
    y = _dominant_vector(_squarings(T, TOP_SQUARINGS))
    return y @ T @ y


def lanczos_tridiagonal(A: jax.Array, v: jax.Array, steps: int = LANCZOS_STEPS):
    """``steps`` Lanczos steps on A^T A / ||A||_F^2 from ``v`` (n,), for a matrix A (m, n).

    Lanczos (Golub & Van Loan §10.1): q_1 = v / ||v||, beta_j q_{j+1} = M q_j - alpha_j q_j - beta_{j-1}
    q_{j-1}, alpha_j = q_j^T M q_j, M = A^T A / ||A||_F^2 (two mat-vecs a step; scaling by the Frobenius
    norm keeps every product in range at any gradient scale). No re-orthogonalisation: in float32 that
    only repeats converged Ritz values, it never lifts the largest above lambda_max(M).

    Returns ``(fro, alphas, betas, x)``: ||A||_F, the tridiagonal's entries (steps,) each, and an
    approximate top Ritz vector x (n,) -- a warm start for the next estimate (``v`` itself when A is
    zero or not finite). ||A||_2 = fro * sqrt(:func:`top_eigenvalue_tridiagonal` (alphas, betas)).
    """
    tiny = jnp.finfo(A.dtype).tiny
    fro = jnp.linalg.norm(A)  # ||A||_F >= ||A||_2
    An = A / jnp.where(fro > 0, fro, 1.0)
    q0 = v / jnp.maximum(jnp.linalg.norm(v), tiny)

    def step(carry, _):
        q, q_prev, beta = carry
        w = (An @ q) @ An  # M q_j
        alpha = q @ w  # alpha_j = q_j^T M q_j
        w = w - alpha * q - beta * q_prev  # beta_j q_{j+1} = M q_j - alpha_j q_j - beta_{j-1} q_{j-1}
        beta_next = jnp.linalg.norm(w)
        alive = beta_next > 1e-6  # else the Krylov space is exhausted: the remaining q are 0
        q_next = jnp.where(alive, w / jnp.maximum(beta_next, tiny), 0.0)
        beta_next = jnp.where(alive, beta_next, 0.0)
        return (q_next, q, beta_next), (q, alpha, beta_next)

    zero = jnp.zeros((), A.dtype)
    _, (Q, alphas, betas) = lax.scan(step, (q0, jnp.zeros_like(q0), zero), None, length=steps)
    x = _dominant_vector(_squarings(_tridiagonal(alphas, betas), RITZ_SQUARINGS)) @ Q  # sum_j y_j q_j
    x = x / jnp.maximum(jnp.linalg.norm(x), tiny)
    ok = (fro > 0) & jnp.all(jnp.isfinite(x))
    return fro, alphas, betas, jnp.where(ok, x, v)


def norm_from_tridiagonal(fro: jax.Array, alphas: jax.Array, betas: jax.Array) -> jax.Array:
    """||A||_2 = ||A||_F sqrt(lambda_max(T)) from :func:`lanczos_tridiagonal`'s output (any leading batch axes)."""
    return fro * jnp.sqrt(jnp.maximum(top_eigenvalue_tridiagonal(alphas, betas), 0.0))


def lanczos_spectral_norm(A: jax.Array, v: jax.Array, steps: int = LANCZOS_STEPS) -> tuple[jax.Array, jax.Array]:
    """Estimate ||A||_2 = sigma_max(A) of a matrix (m, n) by ``steps`` Lanczos steps on A^T A from ``v`` (n,).

    See :func:`lanczos_tridiagonal`. The estimate is a lower bound up to round-off, and converges much
    faster than the power method (Kaniel-Paige-Saad): warm-started from the previous training step's
    vector, 12 steps stayed within 2e-6 relative of the SVD over Experiment 2's 64-rho x 200-step sweep
    (float32 round-off; ``benchmarks/bench_sweeps.py`` measures it). LAPACK-free: a program holding it
    vmaps and shards like any other. Returns ``(sigma, x)``, x the warm start for the next call.
    """
    fro, alphas, betas, x = lanczos_tridiagonal(A, v, steps)
    return norm_from_tridiagonal(fro, alphas, betas), x


class NormRecord(NamedTuple):
    """What :func:`spectral_norm_record` records per step for the chosen matrix G (each a scalar)."""

    fro: jax.Array  # ||G||_F
    spec: jax.Array  # ||G||_2 by warm-started Lanczos


def spectral_norm_record(select: Callable, steps: int = LANCZOS_STEPS) -> tuple[Callable, Callable]:
    """A recorder of ||G||_F and ||G||_2 per training step, G = ``select(grads)`` any matrix (m, n) a user names.

    ||G||_2 by :func:`lanczos_spectral_norm` (``steps`` Lanczos steps), each step warm-started from
    the previous step's Ritz vector, carried as the record's state (Golub & Van Loan §10.1).

    Args:
      select: ``select(grads) -> G`` (m, n), e.g. ``lambda g: g.cell.W_hh``; applied to the
        parameters too, to size the start vector.
      steps: Lanczos steps per training step.

    Returns:
      ``(record, init_state)``: ``record(params, grads, state) -> (NormRecord, state)`` for
      :func:`rnnjax.train.run_steps` (``record=record, record_state=init_state(params)``), and
      ``init_state(params) -> v0`` (n,), the first step's start vector 1/sqrt(n).
    """
    def init_state(params) -> jax.Array:
        G = select(params)
        if jnp.ndim(G) != 2:
            raise ValueError(f"select must pick a matrix (m, n), got shape {tuple(jnp.shape(G))}")
        n = G.shape[1]
        return jnp.full((n,), n ** -0.5, G.dtype)  # v0 = (1, ..., 1) / sqrt(n)

    def record(params, grads, v):
        G = select(grads)
        sigma, v = lanczos_spectral_norm(G, v, steps)  # warm start: last step's Ritz vector
        return NormRecord(jnp.linalg.norm(G), sigma), v

    return record, init_state
