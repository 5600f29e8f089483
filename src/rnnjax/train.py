"""Training: one loop for every model -- ``num_steps`` optax updates inside one jitted ``lax.scan``.

* :func:`fit` -- any loss function, any pytree of parameters, any optax transformation;
* :func:`train` -- the report's vanilla RNN (report §2-3), hand BPTT or ``jax.grad``, recording
  the gradient norms the experiments plot; built on the same loop, :func:`run_steps`.

Both are pure functions of their arrays, so ``jax.vmap`` over parameters (rho, seeds) or over
data turns one run into a sweep, compiled once.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from rnnjax._checks import (
    check_array,
    check_choice,
    check_class_labels,
    check_positive,
    check_positive_int,
    check_step_size,
)
from rnnjax.activations import get_activation
from rnnjax.bptt import bptt_loss_and_grad_fm, loss_and_grad_with_state, resolve_method
from rnnjax.cells import RNNParams
from rnnjax.forward import check_inputs, initial_state, to_feature_major
from rnnjax.linalg import (  # noqa: F401  (re-exported: the Lanczos norm lived here before rnnjax.linalg)
    LANCZOS_STEPS,
    lanczos_spectral_norm,
    lanczos_tridiagonal,
    norm_from_tridiagonal,
    spectral_norm,
    top_eigenvalue_tridiagonal,
)
from rnnjax.losses import check_targets

OPTIMIZERS = {"sgd": optax.sgd, "adam": optax.adam}
SPEC_NORMS = ("lanczos", "svd")  # how train() records ||dL/dW_hh||_2


def make_optimizer(learning_rate, *, clip_norm=None, name: str = "sgd") -> optax.GradientTransformation:
    """``optax.chain(clip_by_global_norm(clip_norm), name(learning_rate))``; no clipping when None.

    Clipping rescales g to g * tau / max(||g||, tau), ||g|| the global norm over all parameters
    (Pascanu et al. 2013, Alg. 1; report §4.2).
    """
    check_choice("optimizer", name, OPTIMIZERS)
    check_positive("learning_rate", learning_rate)
    check_positive("clip_norm", clip_norm) if clip_norm is not None else None
    opt = OPTIMIZERS[name](learning_rate)
    return opt if clip_norm is None else optax.chain(optax.clip_by_global_norm(clip_norm), opt)


class TrainHistory(NamedTuple):
    """What :func:`train` records at every step (each field (num_steps,), before the update)."""

    loss: jax.Array  # batch-mean loss
    grad_norm: jax.Array  # global L2 norm of all gradients, before clipping
    grad_norm_clipped: jax.Array  # the same after clipping: min(||g||, tau)
    grad_whh_fro: jax.Array  # ||dL/dW_hh||_F
    grad_whh_spec: jax.Array  # ||dL/dW_hh||_2, the largest singular value (see train's spec_norm)
    finite: jax.Array  # bool: this step's loss and gradients were finite and training had not halted


class FitHistory(NamedTuple):
    """What :func:`fit` records at every step (each field (num_steps, ...), before that step's update)."""

    loss: jax.Array  # the loss of the step's batch
    grad_norm: jax.Array  # global L2 norm of all gradients, before any clipping
    finite: jax.Array  # bool: this step's loss and gradients were finite and training had not halted
    extra: Any = ()  # whatever ``record(params, grads)`` returned, stacked over steps
    monitor: Any = ()  # whatever ``monitor(params)`` returned at steps 0, every, 2 every, ... (before their update)


def run_steps(value_and_grad, params, batches, optimizer: optax.GradientTransformation, *, num_steps: int,
              carry0=None, carry_state: bool = False, record=None, record_state=None, regularizer=None,
              regularize_every: int = 1, monitor=None, monitor_every: int = 10, start=0, opt_state=None,
              alive=True, return_state: bool = False):
    """The one training loop of rnnjax: ``num_steps`` optax updates inside one ``lax.scan``. Traceable.

    ``value_and_grad(params, batch, carry) -> (loss, grads, final_carry)``. The steps are numbered
    s = ``start``, ..., ``start + num_steps - 1`` (``start`` may be traced); step s trains on item
    s mod N of ``batches`` (a pytree with a leading axis N), or on ``batches(s)`` when ``batches`` is a
    function of the step number (fresh data every step, e.g. drawn from ``fold_in(key, s)``). With
    ``carry_state`` the final carry of an item starts the next (its gradient stopped: truncated BPTT),
    else every item starts from ``carry0``. A run continues where an earlier call left it from that
    call's ``return_state=True`` result ``(params, opt_state, alive, history)``: pass its ``opt_state``
    (default ``optimizer.init(params)``), ``alive`` (False: the run had halted, and stays halted) and
    the next ``start``. ``record(params, grads) -> pytree`` adds per-step quantities to ``history.extra``;
    with ``record_state`` (any pytree) it is ``record(params, grads, state) -> (pytree, next_state)``,
    the state carried from step to step (e.g. a warm start for an iterative estimate).
    ``regularizer(params, batch) -> scalar`` adds its gradient on steps s = 0, k, 2k, ... (k =
    ``regularize_every``; ``lax.cond``, so the other steps skip its cost); ``monitor(params) ->
    pytree`` is recorded into ``history.monitor`` at the call's steps 0, m, 2m, ... (m =
    ``monitor_every``), inside the scan. The first non-finite step halts training: parameters,
    optimiser state and carry keep their last finite values. Returns ``(params, FitHistory)``.
    """
    if callable(batches):
        item = batches  # step s trains on batches(s)
    else:
        n_data = jax.tree.leaves(batches)[0].shape[0]
        item = lambda s: jax.tree.map(lambda a: a[s % n_data], batches)  # step s trains on item s mod N
    n_records = -(-num_steps // monitor_every)  # ceil: steps 0, m, 2m, ... < num_steps

    def step(state, s):
        params, opt_state, carry, alive, records, rec_state = state
        batch = item(s)
        value, grads, final = value_and_grad(params, batch, carry)
        if regularizer is not None:  # g = dL/dtheta + dR/dtheta on every k-th step
            reg = lax.cond(s % regularize_every == 0, lambda p: jax.grad(regularizer)(p, batch),
                           lambda p: jax.tree.map(jnp.zeros_like, p), params)
            grads = jax.tree.map(jnp.add, grads, reg)
        if monitor is not None:  # write monitor(params) into slot i / m on the call's every m-th step i
            i = s - start
            records = lax.cond(i % monitor_every == 0,
                               lambda r: jax.tree.map(lambda buf, v: buf.at[i // monitor_every].set(v), r,
                                                      monitor(params)),
                               lambda r: r, records)
        gnorm = optax.tree.norm(grads)  # ||g|| = sqrt(sum of squares over every parameter)
        finite = alive & jnp.isfinite(value) & jnp.isfinite(gnorm)
        if record is None:
            extra = ()
        elif record_state is None:
            extra = record(params, grads)
        else:
            extra, rec_state = record(params, grads, rec_state)
        updates, new_state = optimizer.update(grads, opt_state, params)
        keep = lambda new, old: jnp.where(finite, new, old)  # a non-finite step halts training
        params = jax.tree.map(keep, optax.apply_updates(params, updates), params)
        opt_state = jax.tree.map(keep, new_state, opt_state)
        if carry_state:  # truncated BPTT: the state crosses items, the gradient does not
            carry = jax.tree.map(keep, lax.stop_gradient(final), carry)
        return (params, opt_state, carry, finite, records, rec_state), FitHistory(value, gnorm, finite, extra)

    records = () if monitor is None else jax.tree.map(lambda a: jnp.zeros((n_records, *a.shape), a.dtype),
                                                      jax.eval_shape(monitor, params))
    opt_state = optimizer.init(params) if opt_state is None else opt_state
    init = (params, opt_state, carry0, jnp.asarray(alive, bool), records, record_state)
    (params, opt_state, _, alive, records, _), history = lax.scan(step, init, start + jnp.arange(num_steps))
    history = history._replace(monitor=records)
    return (params, opt_state, alive, history) if return_state else (params, history)


@partial(jax.jit, static_argnames=("loss_fn", "optimizer", "num_steps", "record", "regularizer", "regularize_every",
                                   "monitor", "monitor_every", "batch_fn"))
def _fit(loss_fn, params, batches, optimizer, num_steps, record, regularizer, regularize_every, monitor,
         monitor_every, batch_fn):
    def value_and_grad(p, batch, carry):
        value, grads = jax.value_and_grad(loss_fn)(p, batch)
        return value, grads, carry

    batches = batches if batch_fn is None else batch_fn  # a function of the step is static, data are not
    return run_steps(value_and_grad, params, batches, optimizer, num_steps=num_steps, record=record,
                     regularizer=regularizer, regularize_every=regularize_every, monitor=monitor,
                     monitor_every=monitor_every)


def fit(loss_fn, params, batches, optimizer: optax.GradientTransformation, *, num_steps: int, record=None,
        regularizer=None, regularize_every: int = 1, monitor=None, monitor_every: int = 10):
    """Train ``params`` with any optax transformation; the whole run is one jitted ``lax.scan``.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, e.g. :func:`rnnjax.make_loss` of a cell. Static
        under ``jax.jit``: pass the same function object to reuse a compiled run.
      params: the initial parameters, any pytree.
      batches: a pytree whose leaves share a leading axis N; step s uses item s mod N
        (``(xs, targets)`` with xs (N, B, T, D) is N mini-batches; N = 1 is full-batch training).
        Or a function ``batches(s) -> batch`` of the step number s (an int32 scalar, traced): fresh
        data every step inside the jitted run, e.g. ``lambda s: rnnjax.data.tasks.adding_problem(
        jax.random.fold_in(key, s), 64, 100)``. Static, like ``loss_fn`` (arrays it closes over
        are compiled in as constants).
      optimizer: any ``optax.GradientTransformation`` (``optax.chain(clip_by_global_norm(1.0),
        adamw(1e-3))``, a schedule, ...).
      num_steps: number of updates.
      record: optional ``record(params, grads) -> pytree`` of per-step quantities (e.g. a norm of one
        weight's gradient), stacked in ``history.extra``; static, like ``loss_fn``.
      regularizer: optional ``regularizer(params, batch) -> scalar`` whose gradient is added to the
        loss's on steps 0, k, 2k, ... (k = ``regularize_every``); the other steps skip its cost.
        E.g. :func:`rnnjax.flossing_regularizer` (gradient flossing during training, Engelken 2023).
        Static, like ``loss_fn``. ``history.loss`` stays the loss alone.
      regularize_every: k >= 1.
      monitor: optional ``monitor(params) -> pytree`` evaluated inside the jitted run at steps 0, m,
        2m, ... (m = ``monitor_every``) on that step's parameters (before its update), e.g.
        :func:`rnnjax.spectrum_monitor` (the top Lyapunov exponents); stacked in
        ``history.monitor`` with a leading axis ceil(num_steps / m). Static, like ``loss_fn``.
      monitor_every: m >= 1.

    Returns:
      ``(params, history)``: a :class:`FitHistory` with the loss, the global gradient norm (before
      clipping, the regulariser's gradient included) and a finite flag per step, and the monitor's
      records. The first non-finite step halts training: ``params`` keep their last finite values
      and :func:`describe_nonfinite` says where it happened.
    """
    check_positive_int("num_steps", num_steps)
    check_positive_int("regularize_every", regularize_every)
    check_positive_int("monitor_every", monitor_every)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), "
                         f"got {type(optimizer).__name__}")
    for name, fn in (("regularizer", regularizer), ("monitor", monitor)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name} must be a function of the parameters or None, got {type(fn).__name__}")
    if callable(batches):
        batch_fn, batches = batches, None
    else:
        batch_fn, leaves = None, jax.tree.leaves(batches)
        if not leaves or any(jnp.ndim(a) < 1 or jnp.shape(a)[0] != jnp.shape(leaves[0])[0] for a in leaves):
            shapes = [tuple(jnp.shape(a))[:1] for a in leaves]
            raise ValueError("batches must be a pytree of arrays sharing a leading axis N (step s uses item s mod N)"
                             f" or a function of the step s, got leading shapes {shapes}")
    check_loss_fn(loss_fn, params, batches if batch_fn is None else batch_fn)
    return _fit(loss_fn, params, batches, optimizer, num_steps, record, regularizer, regularize_every, monitor,
                monitor_every, batch_fn)


def check_loss_fn(loss_fn, params, batches) -> None:
    """Raise ``ValueError`` unless ``loss_fn(params, item 0 of batches)`` (or ``batches(0)`` when it is a
    function of the step) traces to a real scalar (checked abstractly by ``jax.eval_shape``: shapes and
    dtypes, no compute)."""
    if callable(batches):
        try:
            first = jax.eval_shape(batches, jax.ShapeDtypeStruct((), jnp.int32))
        except (TypeError, ValueError) as e:
            raise ValueError(f"batches(s) fails on a step number s (an int32 scalar): "
                             f"{str(e).splitlines()[0]}") from None
    else:
        first = jax.tree.map(lambda a: a[0], batches)
    try:
        out = jax.eval_shape(loss_fn, params, first)
    except (TypeError, ValueError) as e:
        shapes = jax.tree.map(lambda a: tuple(jnp.shape(a)), first)
        raise ValueError(f"loss_fn(params, batch) fails on one item of batches (shapes {shapes}): "
                         f"{str(e).splitlines()[0]}") from None
    if not hasattr(out, "shape") or out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"loss_fn(params, batch) must return a float scalar, got {out}")


def resolve_optimizer(optimizer, learning_rate, clip_norm) -> optax.GradientTransformation:
    """``optimizer`` as an optax transformation: one given as such is used as it is; a name of
    :data:`OPTIMIZERS` becomes :func:`make_optimizer` ``(learning_rate, clip_norm=clip_norm)``."""
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    return make_optimizer(learning_rate, clip_norm=clip_norm, name=optimizer)


@partial(jax.jit, static_argnames=("loss", "num_steps", "optimizer", "activation", "method",
                                   "carry_state", "spec_norm"))
def _train(params, xs, targets, learning_rate, clip_norm, h0, *, loss, num_steps, optimizer,
           activation, method, carry_state, spec_norm):
    batch_shape = xs.shape[1:-2]  # (B,) for (N, B, T, D) items, () for (N, T, D)
    h_start = initial_state(params, batch_shape, h0)  # (*batch, H)
    if method == "bptt":  # the hand BPTT works feature-major: transpose the data once, not every step
        xs = jax.vmap(to_feature_major)(xs)  # (N, T, D, *batch)
        h_start = jnp.moveaxis(h_start, -1, 0)  # (H, *batch)

    def value_and_grad(params, batch, h):
        x, y = batch
        if method == "bptt":
            return bptt_loss_and_grad_fm(params, x, y, h, loss=loss, activation=activation)
        return loss_and_grad_with_state(params, x, y, loss=loss, activation=activation, h0=h, method=method)

    def record(params, grads, v):
        G = grads.W_hh
        if spec_norm == "svd":
            return (jnp.linalg.norm(G), spectral_norm(G)), v  # ||dL/dW_hh||_F, ||dL/dW_hh||_2
        fro, alphas, betas, v = lanczos_tridiagonal(G, v)  # warm-started from the previous step's Ritz vector
        return (fro, (alphas, betas)), v  # the tridiagonals' top eigenvalues come after the loop, all at once

    opt = resolve_optimizer(optimizer, learning_rate, clip_norm)
    H = params.W_hh.shape[1]
    v0 = jnp.full((H,), H ** -0.5, params.W_hh.dtype)  # the first step's start vector
    params, h = run_steps(value_and_grad, params, (xs, targets), opt, num_steps=num_steps, carry0=h_start,
                          carry_state=carry_state, record=record, record_state=v0)
    clipped = h.grad_norm if clip_norm is None else jnp.minimum(h.grad_norm, clip_norm)  # optax's clip rule
    fro, spec = h.extra
    if spec_norm == "lanczos":  # ||G||_2 = ||G||_F sqrt(lambda_max(T)), for every step in one batched pass
        spec = norm_from_tridiagonal(fro, *spec)
    return params, TrainHistory(h.loss, h.grad_norm, clipped, fro, spec, h.finite)


def train(params: RNNParams, xs: jax.Array, targets: jax.Array, *, loss: str, num_steps: int,
          learning_rate=None, optimizer="sgd", clip_norm=None, activation: str = "tanh",
          method: str = "auto", h0=None, carry_state: bool = False, spec_norm: str = "lanczos"):
    """Train a vanilla RNN for ``num_steps`` optimiser steps inside one jitted ``lax.scan``.

    Args:
      params: initial :class:`RNNParams`.
      xs: the training items, (N, T, D) -- one sequence per step -- or (N, B, T, D) -- a batch per
        step (batch-mean loss; the hand BPTT contracts the batch). Step s uses item s mod N, so
        N = 1 is full-batch training and N segments are visited in order, cyclically.
      targets: targets for each item, with the same leading N (see :func:`rnnjax.loss_and_grad`).
      loss: ``"mse_last"``, ``"mse"`` or ``"xent"``.
      num_steps: number of updates.
      learning_rate: step size (may be traced, e.g. vmapped); with an optimizer given by name.
      optimizer: ``"sgd"`` or ``"adam"`` (with ``learning_rate`` and ``clip_norm``), or any
        ``optax.GradientTransformation`` (then ``learning_rate`` is unused, and ``clip_norm`` only
        sets the recorded ``grad_norm_clipped``: put the clipping in the transformation).
      clip_norm: global-norm clipping threshold tau, or None for none.
      activation: hidden non-linearity.
      method: ``"bptt"`` (hand), ``"autograd"`` (``jax.grad``) or ``"auto"`` (the default: hand on CPU,
        ``jax.grad`` on accelerators; :func:`rnnjax.bptt.resolve_method`).
      h0: initial hidden state (H,), or (B, H) for batches; zeros when None.
      carry_state: if True, each item starts from the previous item's final state (gradient
        stopped between items); otherwise every item starts from ``h0``.
      spec_norm: how ``history.grad_whh_spec`` = ||dL/dW_hh||_2 is computed: ``"lanczos"``
        (:func:`lanczos_spectral_norm`, warm-started from the previous step's vector; LAPACK-free,
        so vmapped sweeps shard over every device; a lower bound up to round-off, measured within
        1.5e-6 relative of the SVD over Experiment 2's sweep, ``benchmarks/bench_sweeps.py``) or
        ``"svd"`` (exact, :func:`spectral_norm`; a CPU LAPACK call, which keeps a sweep on one device
        under jaxlib 0.10).

    Returns:
      ``(params, history)``: final parameters and a :class:`TrainHistory`. The first non-finite
      step halts training -- parameters keep their last finite values and ``history.finite`` is
      False from that step on; :func:`describe_nonfinite` says which step and which quantity.
    """
    check_positive_int("num_steps", num_steps)
    check_array("xs", xs)
    check_array("targets", targets)
    if xs.ndim not in (3, 4):
        raise ValueError(f"xs must be (N, T, D) or (N, B, T, D), got shape {tuple(xs.shape)}")
    if targets.shape[0] != xs.shape[0]:
        raise ValueError(f"targets must have the same leading N as xs ({xs.shape[0]}), "
                         f"got shape {tuple(targets.shape)}")
    if not isinstance(optimizer, optax.GradientTransformation):
        if learning_rate is None:
            raise ValueError(f"learning_rate is required with optimizer={optimizer!r}")
        make_optimizer(learning_rate, clip_norm=clip_norm, name=optimizer)  # validate eagerly
    method = resolve_method(method, xs)
    check_choice("spec_norm", spec_norm, SPEC_NORMS)
    get_activation(activation)
    batched = xs.ndim == 4
    check_inputs(params, xs[0], h0, batched=batched)  # every item has the shape of xs[0]
    check_targets(loss, xs.shape[1:-1] + (params.W_ho.shape[1],), targets[0])
    if jnp.issubdtype(targets.dtype, jnp.integer):  # class labels of every item, not only the first
        check_class_labels("targets", targets, params.W_ho.shape[1])
    if learning_rate is not None:  # None: an optax transformation brings its own
        check_step_size("learning_rate", learning_rate, params.W_hh.dtype)
    return _train(params, xs, targets, learning_rate, clip_norm, h0, loss=loss, num_steps=num_steps,
                  optimizer=optimizer, activation=activation, method=method,
                  carry_state=carry_state, spec_norm=spec_norm)


def first_nonfinite_step(history) -> jax.Array:
    """Index of the first step whose values were not finite, or -1 (works on vmapped histories)."""
    bad = ~history.finite
    return jnp.where(bad.any(-1), jnp.argmax(bad, axis=-1), -1)


def describe_nonfinite(history) -> str | None:
    """For one run (a :class:`TrainHistory` or :class:`FitHistory`): None when every step was finite,
    else which step went non-finite and in what."""
    step = int(first_nonfinite_step(history))
    if step < 0:
        return None
    fields = [f for f in history._fields if f not in ("finite", "extra", "monitor")]
    bad = [f for f in fields if not bool(jnp.isfinite(getattr(history, f)[step]))]
    what = ", ".join(bad) if bad else "an earlier quantity"
    return (f"training went non-finite at step {step} of {history.finite.shape[-1]} "
            f"(non-finite: {what}); parameters were kept from step {step - 1}")
