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
    _concrete,
    check_array,
    check_choice,
    check_class_labels,
    check_positive,
    check_positive_int,
    check_step_size,
)
from rnnjax.activations import get_activation
from rnnjax.bptt import _loss_and_grad
from rnnjax.cells import RNNParams
from rnnjax.cells.vanilla import resolve_method
from rnnjax.forward import check_inputs, initial_state
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


class FitState(NamedTuple):
    """Where a :func:`fit` run stopped; ``fit(..., state=history.state)`` continues it exactly."""

    opt_state: Any  # the optimizer's state after the last step
    step: jax.Array  # int32 (): steps done so far = the absolute number of the next step
    halted: jax.Array  # bool (): a non-finite step halted the run (a continued run stays halted)
    record_state: Any = None  # the state of a stateful record(params, grads, state); None for record(params, grads)


class FitHistory(NamedTuple):
    """What :func:`fit` records at every step (each field (num_steps, ...), before that step's update)."""

    loss: jax.Array  # the loss of the step's batch
    grad_norm: jax.Array  # global L2 norm of all gradients, before any clipping
    finite: jax.Array  # bool: this step's loss and gradients were finite and training had not halted
    extra: Any = ()  # whatever ``record(params, grads)`` returned, stacked over steps
    monitor: Any = ()  # whatever ``monitor(params)`` returned at steps 0, every, 2 every, ... (before their update)
    aux: Any = ()  # run_steps(has_aux=True): the auxiliary output of value_and_grad, stacked over steps
    state: Any = None  # a FitState: where the run stopped (pass it as fit(..., state=history.state))


def run_steps(value_and_grad, params, batches, optimizer: optax.GradientTransformation, *, num_steps: int,
              carry0=None, carry_state: bool = False, has_aux: bool = False, record=None, record_state=None,
              regularizer=None, regularize_every: int = 1, monitor=None, monitor_every: int = 10, callback=None,
              callback_every: int = 1, start=0, opt_state=None, alive=True, return_state: bool = False):
    """The one training loop of rnnjax: ``num_steps`` optax updates inside one ``lax.scan``. Traceable.

    ``value_and_grad(params, batch, carry) -> (loss, grads, final_carry)``; with ``has_aux`` the loss is
    ``(loss, aux)`` and ``aux`` is stacked in ``history.aux``. The steps are numbered s = ``start``, ...,
    ``start + num_steps - 1`` (int32; ``start`` may be traced); step s trains on item s mod N of
    ``batches`` (a pytree with a leading axis N), or on ``batches(s)`` when ``batches`` is a
    function of the step number (fresh data every step, e.g. drawn from ``fold_in(key, s)``). With
    ``carry_state`` the final carry of an item starts the next (its gradient stopped: truncated BPTT),
    else every item starts from ``carry0``. A run continues where an earlier call left it from that
    call's ``history.state`` (a :class:`FitState`) or its ``return_state=True`` result ``(params,
    opt_state, alive, history)``: pass its ``opt_state`` (default ``optimizer.init(params)``), ``alive``
    (False: the run had halted, and stays halted) and the next ``start``. ``record(params, grads) ->
    pytree`` adds per-step quantities to ``history.extra``; with ``record_state`` (any pytree) it is
    ``record(params, grads, state) -> (pytree, next_state)``, the state carried from step to step (e.g.
    a warm start for an iterative estimate). ``regularizer(params, batch) -> scalar`` adds its gradient
    on steps s = 0, k, 2k, ... (k = ``regularize_every``; ``lax.cond``, so the other steps skip its
    cost); ``monitor(params) -> pytree`` is recorded into ``history.monitor`` at the call's steps 0, m,
    2m, ... (m = ``monitor_every``), inside the scan. ``callback(step, loss)`` is called on the host
    (``jax.debug.callback``, ordered) after the steps s with s + 1 = ``step`` a multiple of
    ``callback_every`` and after the call's last step, with that step's loss. The first non-finite step
    halts training: parameters, optimiser state and carry keep their last finite values. Returns
    ``(params, FitHistory)``.
    """
    if callable(batches):
        item = batches  # step s trains on batches(s)
    else:
        n_data = jax.tree.leaves(batches)[0].shape[0]
        item = lambda s: jax.tree.map(lambda a: a[s % n_data], batches)  # step s trains on item s mod N
    n_records = -(-num_steps // monitor_every)  # ceil: steps 0, m, 2m, ... < num_steps
    start = jnp.asarray(start, jnp.int32)
    last = start + (num_steps - 1)

    def step(state, s):
        params, opt_state, carry, alive, records, rec_state = state
        batch = item(s)
        value, grads, final = value_and_grad(params, batch, carry)
        value, aux = value if has_aux else (value, ())
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
        if callback is not None:  # progress on the host: (steps done, this step's loss) every k steps and at the end
            lax.cond(((s + 1) % callback_every == 0) | (s == last),
                     lambda: jax.debug.callback(callback, s + 1, value, ordered=True), lambda: None)
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
        return (params, opt_state, carry, finite, records, rec_state), FitHistory(value, gnorm, finite, extra, aux=aux)

    records = () if monitor is None else jax.tree.map(lambda a: jnp.zeros((n_records, *a.shape), a.dtype),
                                                      jax.eval_shape(monitor, params))
    opt_state = optimizer.init(params) if opt_state is None else opt_state
    init = (params, opt_state, carry0, jnp.asarray(alive, bool), records, record_state)
    steps = start + jnp.arange(num_steps, dtype=jnp.int32)
    (params, opt_state, _, alive, records, rec_state), history = lax.scan(step, init, steps)
    history = history._replace(monitor=records, state=FitState(opt_state, start + num_steps, ~alive, rec_state))
    return (params, opt_state, alive, history) if return_state else (params, history)


@partial(jax.jit, static_argnames=("loss_fn", "optimizer", "num_steps", "record", "regularizer", "regularize_every",
                                   "monitor", "monitor_every", "callback", "callback_every", "batch_fn"))
def _fit(loss_fn, params, batches, optimizer, opt_state, start, halted, record_state, *, num_steps, record,
         regularizer, regularize_every, monitor, monitor_every, callback, callback_every, batch_fn):
    # fit's checks that depend only on shapes, dtypes and the static arguments: run at trace time, so a
    # call that compiles nothing re-checks nothing (the values' checks ran in fit)
    first = check_loss_fn(loss_fn, params, batches if batch_fn is None else batch_fn)
    if batch_fn is None:
        check_leading_axis(loss_fn, params, batches)
    if opt_state is not None:
        check_opt_state(optimizer, params, opt_state)
    check_hooks(params, first, record=record, record_state=record_state, regularizer=regularizer, monitor=monitor)

    def value_and_grad(p, batch, carry):
        value, grads = jax.value_and_grad(loss_fn)(p, batch)
        return value, grads, carry

    batches = batches if batch_fn is None else batch_fn  # a function of the step is static, data are not
    params, history = run_steps(value_and_grad, params, batches, optimizer, num_steps=num_steps, record=record,
                                record_state=record_state, regularizer=regularizer,
                                regularize_every=regularize_every, monitor=monitor, monitor_every=monitor_every,
                                callback=callback, callback_every=callback_every, start=start,
                                opt_state=opt_state, alive=~halted)  # opt_state None: optimizer.init(params)
    return params, history


def fit(loss_fn, params, batches, optimizer: optax.GradientTransformation, *, num_steps: int, record=None,
        record_state=None, regularizer=None, regularize_every: int = 1, monitor=None, monitor_every: int = 10,
        state: FitState | None = None, callback=None, callback_every: int = 100):
    """Train ``params`` with any optax transformation; the whole run is one jitted ``lax.scan``.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, e.g. :func:`rnnjax.make_loss` of a cell. A loss
        that carries ``loss_fn.check_batches(params, batches)`` (as ``make_loss``'s does: targets'
        shapes and class labels of every item) has it called on the data before any work.
      params: the initial parameters, any pytree (with ``state``: the parameters that run reached).
      batches: a pytree whose leaves share a leading axis N >= 1; step s uses item s mod N
        (``(xs, targets)`` with xs (N, B, T, D) is N mini-batches; N = 1 is full-batch training:
        ``jax.tree.map(lambda a: a[None], batch)``). A pytree that ``loss_fn`` accepts both whole
        and item by item -- ``(xs (B, T, D), ys)`` for ``make_loss``, B > 1 -- is refused as ambiguous.
        Or a function ``batches(s) -> batch`` of the absolute step number s (an int32 scalar,
        traced): fresh data every step inside the jitted run, e.g. ``lambda s:
        rnnjax.data.tasks.adding_problem(jax.random.fold_in(key, s), 64, 100)``.
      optimizer: any ``optax.GradientTransformation`` (``optax.chain(clip_by_global_norm(1.0),
        adamw(1e-3))``, a schedule, ...).
      num_steps: number of updates in this call.
      record: optional ``record(params, grads) -> pytree`` of per-step quantities (e.g. a norm of one
        weight's gradient), stacked in ``history.extra``; with ``record_state`` (any pytree, e.g. a
        Lanczos warm-start vector) it is ``record(params, grads, state) -> (pytree, next_state)``.
      record_state: the stateful record's initial state (a continued run takes it from ``state``).
      regularizer: optional ``regularizer(params, batch) -> scalar`` whose gradient is added to the
        loss's on the absolute steps 0, k, 2k, ... (k = ``regularize_every``); the other steps skip
        its cost. E.g. :func:`rnnjax.flossing_regularizer` (gradient flossing during training,
        Engelken 2023). ``history.loss`` stays the loss alone.
      regularize_every: k >= 1.
      monitor: optional ``monitor(params) -> pytree`` evaluated inside the jitted run at the
        absolute steps 0, m, 2m, ... (m = ``monitor_every``) on that step's parameters (before its
        update), e.g. :func:`rnnjax.spectrum_monitor` (the top Lyapunov exponents); stacked in
        ``history.monitor`` with a leading axis ceil(num_steps / m). A continued run with a monitor
        must start at a multiple of m.
      monitor_every: m >= 1.
      state: ``history.state`` of an earlier call: continue that run exactly (optimizer state,
        absolute step for the data, regulariser, monitor and schedules, record state, halted flag);
        ``fit(..., num_steps=20)`` twice equals ``num_steps=40`` once, bit for bit. Under ``jax.vmap``,
        map the step unbatched (``in_axes=FitState(0, None, 0, ...)`` with ``state.step[0]``, the same
        for every run): a batched step gathers each run's data apart, equal within float32 round-off.
      callback: optional ``callback(step, loss)`` called on the host (``jax.debug.callback``,
        ordered) with the number of steps done and the last step's loss, every ``callback_every``
        steps and after the call's last step -- e.g. a progress line. The only host round-trip.
        Not under ``jax.vmap`` (ordered effects cannot be batched).
      callback_every: k >= 1.

    Returns:
      ``(params, history)``: a :class:`FitHistory` with the loss, the global gradient norm (before
      clipping, the regulariser's gradient included) and a finite flag per step, the monitor's
      records, and ``history.state``, a :class:`FitState`. The first non-finite step halts
      training: ``params`` keep their last finite values and :func:`describe_nonfinite` says where.

    Compiled once per ``loss_fn``, ``optimizer``, ``record``, ``regularizer``, ``monitor``,
    ``callback``, batch function and shapes: these are static under ``jax.jit`` and compared by
    identity, so pass the same objects to reuse a compiled run -- a fresh ``optax`` object
    (``optax.adam(1e-3)`` written again) or a fresh closure (a new ``lambda``, a new
    ``make_loss(cell)``) compiles again, and arrays a function closes over are compiled in as
    constants. New parameter values, data of the same shapes and a continued ``state`` (its step
    is traced) compile nothing.
    """
    for name, value in (("num_steps", num_steps), ("regularize_every", regularize_every),
                        ("monitor_every", monitor_every), ("callback_every", callback_every)):
        check_positive_int(name, value)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), "
                         f"got {type(optimizer).__name__}")
    for name, fn in (("loss_fn", loss_fn), ("record", record), ("regularizer", regularizer), ("monitor", monitor),
                     ("callback", callback)):
        if (fn is not None or name == "loss_fn") and not callable(fn):
            raise ValueError(f"{name} must be a function or None, got {type(fn).__name__}")
    batch_fn = batches if callable(batches) else None
    if batch_fn is None:
        check_batch_stack(batches)
        if callable(getattr(loss_fn, "check_batches", None)):
            loss_fn.check_batches(params, batches)  # the loss's own check of every item (e.g. class labels)
    if state is None:
        opt_state, start, halted = None, jnp.asarray(0, jnp.int32), jnp.asarray(False)
    else:
        check_fit_state(state, record_state=record_state, monitor=monitor, monitor_every=monitor_every)
        opt_state, start, halted, record_state = state
        start, halted = jnp.asarray(start, jnp.int32), jnp.asarray(halted, bool)
    # _fit checks the functions against the shapes and dtypes when it traces (once per compiled program)
    return _fit(loss_fn, params, None if batch_fn else batches, optimizer, opt_state, start, halted, record_state,
                num_steps=num_steps, record=record, regularizer=regularizer, regularize_every=regularize_every,
                monitor=monitor, monitor_every=monitor_every, callback=callback, callback_every=callback_every,
                batch_fn=batch_fn)


# ------------------------------------------------------------------ fit's up-front checks (no compute)

class _Text(str):
    __repr__ = str.__str__  # printed bare inside a container


def _shape(a) -> tuple:
    return tuple(getattr(a, "shape", jnp.shape(a)))


def _dtype(a):
    return jnp.dtype(getattr(a, "dtype", None) or jnp.result_type(a))


def describe(tree) -> str:
    """``tree`` with every array shown as its dtype and shape, e.g. ``(float32[6, 5, 2], int32[6, 5])``."""
    return str(jax.tree.map(lambda a: _Text(f"{_dtype(a).name}{list(_shape(a))}"), tree))


def _error(e: Exception) -> str:
    """An exception's whole message (JAX's type mismatches span several lines), one space between lines."""
    return " ".join(line.strip() for line in str(e).strip().splitlines() if line.strip())


def _item(tree):
    """Item 0 of a stack, abstractly (``jax.ShapeDtypeStruct`` leaves: no device work); IndexError on a scalar."""
    def one(a):
        if not _shape(a):
            raise IndexError(f"a scalar {describe(a)} has no item 0")
        return jax.ShapeDtypeStruct(_shape(a)[1:], _dtype(a))
    return jax.tree.map(one, tree)


def check_batch_stack(batches) -> None:
    """Raise ``ValueError`` unless ``batches`` is a pytree of arrays sharing a leading axis N >= 1 whose
    items hold data (no zero-length axis, e.g. T = 0); the message names every leaf's shape."""
    leaves = jax.tree_util.tree_flatten_with_path(batches)[0]
    if not leaves or any(not hasattr(a, "shape") or jnp.ndim(a) < 1 for _, a in leaves) or \
            len({jnp.shape(a)[0] for _, a in leaves}) != 1:
        raise ValueError("batches must be a pytree of arrays sharing a leading axis N (step s uses item s mod N) "
                         f"or a function of the step s, got {describe(batches) if leaves else repr(batches)}")
    n = jnp.shape(leaves[0][1])[0]
    if n == 0:
        raise ValueError(f"batches is empty: its leading axis N (the items the steps cycle through) is 0, "
                         f"in {describe(batches)}")
    _check_nonempty(batches, "batches")


def _check_nonempty(tree, what: str) -> None:
    for path, a in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if 0 in jnp.shape(a):
            raise ValueError(f"{what}{jax.tree_util.keystr(path)} has shape {tuple(jnp.shape(a))}: an axis of "
                             f"length 0 (e.g. T = 0 time steps), so its items hold no data; in {describe(tree)}")


def _valid_batch(loss_fn, params, batch) -> bool:
    """Whether ``loss_fn(params, batch)`` traces to a float scalar (``jax.eval_shape``; no compute)."""
    try:
        out = jax.eval_shape(loss_fn, params, batch)
    except Exception:  # noqa: BLE001 -- a probe: any failure means "not a batch"
        return False
    return hasattr(out, "shape") and out.shape == () and jnp.issubdtype(out.dtype, jnp.floating)


def check_leading_axis(loss_fn, params, batches) -> None:
    """Raise ``ValueError`` when ``batches`` may lack the leading step axis N: ``loss_fn`` accepts both the
    whole of ``batches`` and its item 0 -- e.g. ``(xs (B, T, D), ys (B, O))`` for ``make_loss``, which
    would train on one sequence per step. N = 1 is not ambiguous (one item either way: ``(xs[None],
    ys[None])`` for one sequence), and a rank-polymorphic loss (one that also accepts item 0 of item 0)
    cannot be told apart by shapes; its leading axis is taken as N."""
    if _shape(jax.tree.leaves(batches)[0])[0] == 1 or not _valid_batch(loss_fn, params, batches):
        return
    try:
        deeper = _item(_item(batches))
    except IndexError:
        deeper = None
    if deeper is not None and _valid_batch(loss_fn, params, deeper):
        return
    raise ValueError(
        f"batches {describe(batches)} is ambiguous: loss_fn accepts both the whole of it (one batch) and its item 0 "
        f"{describe(_item(batches))}, and fit reads the leading axis as N, the items that step s cycles through "
        "(s mod N). To train on this whole batch at every step pass jax.tree.map(lambda a: a[None], batches) "
        "(N = 1); to train on one sequence per step pass jax.tree.map(lambda a: a[:, None], batches) "
        "(xs[:, None]: N items of a batch of one)")


def check_loss_fn(loss_fn, params, batches):
    """Raise ``ValueError`` unless ``loss_fn(params, item 0 of batches)`` (or ``batches(0)`` when it is a
    function of the step) traces to a real scalar (checked abstractly by ``jax.eval_shape``: shapes and
    dtypes, no compute). Returns that item, abstract (``jax.ShapeDtypeStruct`` leaves) for a function."""
    if callable(batches):
        try:
            first = jax.eval_shape(batches, jax.ShapeDtypeStruct((), jnp.int32))
        except Exception as e:  # noqa: BLE001 -- any failure of the user's function, reported whole
            raise ValueError(f"batches(s) fails on a step number s (an int32 scalar): {_error(e)}") from None
        _check_nonempty(first, "batches(s)")
    else:
        first = _item(batches)
    try:
        out = jax.eval_shape(loss_fn, params, first)
    except Exception as e:  # noqa: BLE001 -- any failure of the user's loss, reported whole with both sides
        raise ValueError(f"loss_fn(params, batch) fails on one item of batches, batch {describe(first)} with "
                         f"params {describe(params)}: {_error(e)}") from None
    if not hasattr(out, "shape") or out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"loss_fn(params, batch) must return a float scalar, got {out}")
    return first


def _same_abstract(a, b) -> bool:
    """Same pytree structure, and every leaf the same shape and dtype."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    return ta == tb and all(jnp.shape(x) == jnp.shape(y) and jnp.result_type(x) == jnp.result_type(y)
                            for x, y in zip(la, lb, strict=True))


def check_fit_state(state, *, record_state=None, monitor=None, monitor_every: int = 10) -> None:
    """Raise ``ValueError`` unless ``state`` is one run's :class:`FitState`, continued without a second initial
    record state, and (with a monitor) at a multiple of ``monitor_every`` when its step is concrete."""
    if not isinstance(state, FitState):
        raise ValueError(f"state must be the FitState of an earlier run (fit's history.state), got "
                         f"{type(state).__name__}")
    if jnp.shape(state.step) != () or jnp.shape(state.halted) != ():
        raise ValueError(f"state must be one run's FitState (step and halted scalars), got step of shape "
                         f"{jnp.shape(state.step)} (a vmapped run continues under the same jax.vmap)")
    if record_state is not None:
        raise ValueError("record_state is the initial state of a new run; a continued run takes its record "
                         "state from state (drop record_state= when passing state=)")
    step = _concrete(state.step)
    if monitor is not None and step is not None and int(step) % monitor_every:
        raise ValueError(f"a run with a monitor continues at a multiple of monitor_every ({monitor_every}) so "
                         f"that it records at the absolute steps 0, m, 2m, ...; state.step is {int(step)} "
                         "(make num_steps of each call a multiple of monitor_every)")


def check_opt_state(optimizer, params, opt_state) -> None:
    """Raise ``ValueError`` naming both in full unless ``opt_state`` has the structure, shapes and dtypes of
    ``optimizer.init(params)`` (``jax.eval_shape``; no compute)."""
    want = jax.eval_shape(optimizer.init, params)
    if not _same_abstract(opt_state, want):
        raise ValueError(f"state.opt_state does not fit this optimizer and these parameters: "
                         f"optimizer.init(params) gives {describe(want)}, state.opt_state is {describe(opt_state)}")


def check_hooks(params, batch, *, record=None, record_state=None, regularizer=None, monitor=None) -> None:
    """Raise ``ValueError`` naming the function and both sides in full unless ``record``, ``regularizer``
    and ``monitor`` trace on ``params`` (and one ``batch``), a stateful record returning a next state of
    its state's exact structure, shapes and dtypes (``jax.eval_shape``; no compute)."""
    def trace(name, fn, *args):
        try:
            return jax.eval_shape(fn, *args)
        except Exception as e:  # noqa: BLE001 -- any failure of the user's function, reported whole
            raise ValueError(f"{name} fails on params {describe(params)}: {_error(e)}") from None

    if monitor is not None:
        trace("monitor(params)", monitor, params)
    if regularizer is not None:
        out = trace("regularizer(params, batch)", regularizer, params, batch)
        if not hasattr(out, "shape") or out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
            raise ValueError(f"regularizer(params, batch) must return a float scalar, got {out}")
    if record is None:
        return
    if record_state is None:
        trace("record(params, grads)", record, params, params)
        return
    out = trace("record(params, grads, state)", record, params, params, record_state)
    if not (isinstance(out, tuple) and len(out) == 2) or not _same_abstract(out[1], record_state):
        got = describe(out[1]) if isinstance(out, tuple) and len(out) == 2 else f"{describe(out)} (not a pair)"
        raise ValueError(f"record(params, grads, state) must return (values, next_state) with next_state like "
                         f"state {describe(record_state)}, got next_state {got}")


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
    # loss_and_grad's program: the generic loss on the vanilla cell, whose backward pass on CPU is the hand BPTT
    value_and_grad = lambda params, batch, h: _loss_and_grad(params, *batch, h, loss=loss, activation=activation,
                                                             method=method)

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
    fields = [f for f in history._fields if f not in ("finite", "extra", "monitor", "aux", "state")]
    bad = [f for f in fields if not bool(jnp.isfinite(getattr(history, f)[step]))]
    what = ", ".join(bad) if bad else "an earlier quantity"
    return (f"training went non-finite at step {step} of {history.finite.shape[-1]} "
            f"(non-finite: {what}); parameters were kept from step {step - 1}")
