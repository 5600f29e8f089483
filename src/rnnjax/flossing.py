"""Gradient flossing (Engelken, NeurIPS 2023, arXiv 2312.17306): drive Lyapunov exponents to zero.

The gradient reaching k steps back through a recurrent network scales like exp(lambda_1 k) along
its most expanding direction and like exp(lambda_i k) along the others (report §4.1; the Lyapunov
exponents lambda_1 >= lambda_2 >= ... of the forward dynamics, :func:`rnnjax.lyapunov_of`).
Exponents near zero keep the products of step Jacobians well-conditioned over long horizons.
Flossing descends on

    L_floss = sum_{i=1}^{num} (lambda_i - target)^2        (Engelken 2023, the flossing loss)

with the exponents computed by QR re-orthonormalisation and differentiated through it (the paper's
code averages over the num exponents instead of summing: a constant factor num, which only rescales
a plain gradient step and leaves Adam's unchanged).

* :func:`flossing_loss` -- the loss for any step ``step(carry, x) -> carry``; ``jax.grad`` of it
  with respect to whatever the step closes over is the exact gradient by default.
* :func:`floss` -- flossing on its own (e.g. before training): ``num_steps`` updates of any optax
  transformation on :func:`rnnjax.train.run_steps`, the loop :func:`rnnjax.fit` runs on; its default
  gradient is the ``"local"`` surrogate, chosen by measurement (``docs/flossing.md``).
* :func:`flossing_regularizer` and :func:`spectrum_monitor` -- flossing during training and the top
  exponents recorded inside the jitted run, as options of :func:`rnnjax.fit`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from rnnjax._checks import check_positive_int
from rnnjax.analysis import check_lyapunov_args, lyapunov_of
from rnnjax.train import run_steps

# floss's default gradient, chosen by measurement: on edge-of-chaos tanh networks (rho 2.5, weak
# input) plain Adam with "local" cut sum lambda_i^2 at least 5x on every seed, while "exact" and
# "frozen_states" left some seeds worse than they started (experiments/flossing.py, part 1; the
# numbers are in docs/flossing.md and on the results page).
FLOSS_GRADIENT = "local"


def flossing_loss(step: Callable, carry0, xs: jax.Array, *, num: int, warmup: int = 0, reorth_every: int = 1,
                  target=0.0, gradient: str = "exact", checkpoint: bool = False) -> jax.Array:
    """sum_{i <= num} (lambda_i - target)^2 of the forward dynamics driven by ``xs`` (Engelken 2023).

    Args:
      step: ``step(carry, x) -> carry``, as for :func:`rnnjax.lyapunov_of`; parameters it closes
        over are what ``jax.grad`` differentiates.
      carry0: the initial carry.
      xs: inputs (T, D).
      num: how many of the largest exponents to floss (1..S).
      warmup: steps run before averaging (the frame aligns; the transient is dropped), 0 <= warmup < T.
      reorth_every: steps between QR re-orthonormalisations (see :func:`rnnjax.lyapunov_of`).
      target: the value the exponents are pulled to (0: neither vanishing nor exploding).
      gradient: ``"exact"`` (default, the true derivative), ``"frozen_states"`` or ``"local"``
        (surrogates, see :func:`rnnjax.lyapunov_of`); the value is the same in every mode.
      checkpoint: rematerialise each step in the backward pass (less memory, one more forward).

    Returns:
      A scalar; NaN when the state stopped being finite.
    """
    return flossing_loss_and_exponents(step, carry0, xs, num=num, warmup=warmup, reorth_every=reorth_every,
                                       target=target, gradient=gradient, checkpoint=checkpoint)[0]


def flossing_loss_and_exponents(step: Callable, carry0, xs: jax.Array, *, num: int, warmup: int = 0,
                                reorth_every: int = 1, target=0.0, gradient: str = "exact",
                                checkpoint: bool = False):
    """``(flossing_loss, lambdas (num,))`` from one QR pass; ``jax.value_and_grad(..., has_aux=True)`` form."""
    lambdas = lyapunov_of(step, carry0, xs, warmup=warmup, num=num, reorth_every=reorth_every, gradient=gradient,
                          checkpoint=checkpoint)
    return jnp.sum((lambdas - target) ** 2), lambdas  # L_floss = sum_i (lambda_i - target)^2 (Engelken 2023)


class FlossHistory(NamedTuple):
    """What :func:`floss` records at every step (before that step's update)."""

    loss: jax.Array  # (num_steps,) sum_i (lambda_i - target)^2
    exponents: jax.Array  # (num_steps, num) lambda_1 >= ... >= lambda_num, nats per step
    finite: jax.Array  # (num_steps,) bool: loss and gradient finite and flossing had not halted


def _check_floss_args(carry0, xs, *, num, num_steps, warmup, reorth_every, gradient, optimizer) -> None:
    check_positive_int("num_steps", num_steps)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), "
                        f"got {type(optimizer).__name__}")
    if jnp.ndim(xs) not in (2, 3):
        raise ValueError(f"xs must be one sequence (T, D) or N sequences (N, T, D), got shape "
                         f"{tuple(jnp.shape(xs))}")
    one = xs if jnp.ndim(xs) == 2 else xs[0]
    check_lyapunov_args(carry0, one, warmup=warmup, num=num, reorth_every=reorth_every, gradient=gradient)


def floss(make_step: Callable, params, carry0, xs: jax.Array, *, num: int, num_steps: int,
          optimizer: optax.GradientTransformation, warmup: int = 0, reorth_every: int = 1, target=0.0,
          gradient: str = FLOSS_GRADIENT, checkpoint: bool = False):
    """Gradient flossing on its own: ``num_steps`` optimiser steps on :func:`flossing_loss`.

    One jitted ``lax.scan`` of :func:`rnnjax.train.run_steps`, the loop of :func:`rnnjax.fit` (compiled
    once per ``make_step``/``optimizer``/shape), pure, so ``jax.vmap`` over ``params`` (seeds) flosses
    many networks in one program.

    Args:
      make_step: ``make_step(params) -> step`` with ``step(carry, x) -> carry``, e.g.
        ``lambda p: rnnjax.rnn_step(p)``.
      params: the initial parameters (any pytree); every leaf is updated.
      carry0: initial carry of every flossing sequence.
      xs: one input sequence (T, D) used at every step, or N sequences (N, T, D), step s using
        sequence s mod N (fresh inputs, as Engelken 2023 draws one per flossing step).
      num: how many of the largest exponents to floss.
      num_steps: number of updates.
      optimizer: any optax transformation, e.g. ``optax.adam(1e-3)``.
      warmup, reorth_every, target, checkpoint: as for :func:`flossing_loss`.
      gradient: ``"local"`` by default (measured to floss best, ``docs/flossing.md``); ``"exact"``
        and ``"frozen_states"`` as for :func:`rnnjax.lyapunov_of`.

    Returns:
      ``(params, history)``: the flossed parameters and a :class:`FlossHistory`. The first
      non-finite step halts flossing (parameters keep their last finite values).
    """
    _check_floss_args(carry0, xs, num=num, num_steps=num_steps, warmup=warmup, reorth_every=reorth_every,
                      gradient=gradient, optimizer=optimizer)
    return _floss(make_step, params, carry0, xs, jnp.asarray(target), num=num, num_steps=num_steps,
                  optimizer=optimizer, warmup=warmup, reorth_every=reorth_every, gradient=gradient,
                  checkpoint=checkpoint)


@partial(jax.jit, static_argnames=("make_step", "num", "num_steps", "optimizer", "warmup", "reorth_every",
                                   "gradient", "checkpoint"))
def _floss(make_step, params, carry0, xs, target, *, num, num_steps, optimizer, warmup, reorth_every, gradient,
           checkpoint):
    seqs = xs if xs.ndim == 3 else xs[None]  # step s flosses on sequence s mod N
    value_and_grad = jax.value_and_grad(
        lambda p, x: flossing_loss_and_exponents(make_step(p), carry0, x, num=num, warmup=warmup,
                                                 reorth_every=reorth_every, target=target, gradient=gradient,
                                                 checkpoint=checkpoint), has_aux=True)
    params, history = run_steps(lambda p, x, carry: (*value_and_grad(p, x), carry), params, seqs, optimizer,
                                num_steps=num_steps, has_aux=True)  # the one training loop: halts when non-finite
    return params, FlossHistory(loss=history.loss, exponents=history.aux, finite=history.finite)


def flossing_regularizer(make_step: Callable, carry0, xs, *, num: int, weight=1.0, warmup: int = 0,
                         reorth_every: int = 1, target=0.0, gradient: str = FLOSS_GRADIENT, checkpoint: bool = False):
    """``regularizer(params, batch) = weight * flossing_loss`` for :func:`rnnjax.fit` (flossing during training).

    Args:
      make_step: ``make_step(params) -> step`` over the parameters ``fit`` trains (e.g.
        ``lambda m: partial(cell.step, m.cell)`` for a :class:`rnnjax.ModelParams`).
      carry0: initial carry of the flossing sequence.
      xs: the flossing inputs: an array (T, D), or a function ``xs(batch) -> (T, D)`` that takes
        them from the step's batch (fresh inputs at every flossing step, as Engelken 2023 does),
        e.g. ``lambda batch: batch[0][0]``, the first sequence of a ``(xs, targets)`` batch.
      num, warmup, reorth_every, target, checkpoint: as for :func:`flossing_loss`.
      weight: the regulariser's weight (``fit`` adds ``weight * d L_floss / d params``).
      gradient: ``"local"`` by default, as :func:`floss`.

    Build it once and pass the same function to every ``fit`` call that should share a compiled run.
    """
    check_positive_int("num", num)
    pick = xs if callable(xs) else (lambda batch: xs)

    def regularizer(params, batch):
        return weight * flossing_loss(make_step(params), carry0, pick(batch), num=num, warmup=warmup,
                                      reorth_every=reorth_every, target=target, gradient=gradient,
                                      checkpoint=checkpoint)  # weight * sum_i (lambda_i - target)^2

    return regularizer


def spectrum_monitor(make_step: Callable, carry0, xs: jax.Array, *, num: int, warmup: int = 0,
                     reorth_every: int = 1):
    """``monitor(params) -> lambdas (num,)`` for :func:`rnnjax.fit`: the top ``num`` Lyapunov exponents of
    ``make_step(params)`` driven by the fixed inputs ``xs (T, D)`` from ``carry0`` (:func:`rnnjax.lyapunov_of`).

    Fixed inputs make the records comparable from step to step; ``fit(..., monitor=m,
    monitor_every=10)`` records them every 10 steps inside the jitted run.
    """
    check_lyapunov_args(carry0, xs, warmup=warmup, num=num, reorth_every=reorth_every)

    def monitor(params):
        return lyapunov_of(make_step(params), carry0, xs, warmup=warmup, num=num, reorth_every=reorth_every)

    return monitor
