"""The vanishing/exploding-gradient diagnostics of report §4.1, for any recurrent cell.

Backpropagating the loss at step T to an earlier state multiplies step Jacobians (report §4.1)::

    dL_T/dh_{T-k} = (J_T J_{T-1} ... J_{T-k+1})^T dL_T/dh_T,     J_t = d h_t / d h_{t-1}

(in ``jax.jacfwd``'s orientation, J_t[i, j] = d h_t[i] / d h_{t-1}[j]; for the vanilla RNN this is
the report's J_t = diag(phi'(a_t)) W_hh^T). The report bounds its norm by (gamma ||W_hh||_2)^k
||dL_T/dh_T||. This module measures what the bound only limits:

* :func:`jacobians_of` -- the step Jacobians J_1..J_T of any cell, by ``jax.jacfwd``;
* :func:`lag_profile_of` / :func:`log_lag_profile_of` -- ||dL_T/dh_{T-k}|| for every lag k
  (vector-Jacobian products, renormalised so long sequences cannot overflow);
* :func:`product_log_singular_values` -- the singular values of the products of k Jacobians;
* :func:`lyapunov_of` -- the Lyapunov spectrum by QR re-orthonormalisation (Benettin et al. 1980;
  Vogt et al. 2022; Engelken et al. 2023): the asymptotic growth rates, in nats per step, of the
  Jacobian products, which the lag profile approaches at long lags;
* :func:`report_bound` -- the report's (gamma ||W_hh||_2)^k.

Generic functions take a step ``step(carry, x (D,)) -> carry`` with any pytree ``carry`` -- a flat
state (S,), an LSTM's ``(h, c)``, the step of any :class:`rnnjax.Cell` -- and work on its flattening
(``jax.flatten_util.ravel_pytree``, S = the total size of the leaves). Each is jitted at its
boundary with the step as a pytree: pass ``jax.tree_util.Partial(cell.step, params)`` (or
:func:`cell_step`) and new parameters are traced, so a repeated call compiles nothing; a fresh
``lambda`` is a new static function and compiles again. ``step_jacobians``, ``lyapunov_spectrum``
and ``lag_profile`` are these functions on the vanilla cell (:func:`rnn_step`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.tree_util import Partial

from rnnjax._checks import check_choice, check_positive_int
from rnnjax.activations import get_activation
from rnnjax.cells import RNNParams, vanilla
from rnnjax.cells.base import Cell
from rnnjax.forward import check_inputs, initial_state, rnn_forward
from rnnjax.losses import check_targets, get_loss
from rnnjax.scan import check_carry_map

Step = Callable[[Any, jax.Array], Any]  # step(carry, x_t) -> carry_t, any pytree carry


def cell_step(cell: Cell, params) -> Partial:
    """``cell.step`` with its parameters bound, as a pytree: ``(carry, x) -> carry`` whose ``params`` are traced."""
    return Partial(cell.step, params)


def _jit_boundary(*static: str):
    """Jit a generic function at the boundary a user calls: the step (a :class:`jax.tree_util.Partial`, or wrapped
    in one) and the arrays traced, ``static`` keywords static. Checks on shapes run while tracing."""

    def wrap(fn):
        jitted = jax.jit(fn, static_argnames=static)

        @functools.wraps(fn)
        def call(step, *args, **kwargs):
            return jitted(step if isinstance(step, Partial) else Partial(step), *args, **kwargs)

        return call

    return wrap


def _check_sequence(carry0, xs, step=None) -> None:
    """Raise ``ValueError`` unless ``carry0`` is a pytree of arrays, ``xs`` is (T, D) with T >= 1 and (given
    ``step``) ``step(carry0, xs[0])`` returns a carry of the same structure, shapes and dtypes."""
    leaves = jax.tree.leaves(carry0)
    if not leaves or any(jnp.ndim(a) < 1 for a in leaves):
        raise ValueError("the initial carry must be an array (S,) or a pytree of arrays (e.g. an LSTM's (h, c)), "
                         f"got {jax.tree.map(lambda a: tuple(jnp.shape(a)), carry0)}")
    if jnp.ndim(xs) != 2 or xs.shape[0] < 1:
        raise ValueError(f"xs must have shape (T, D) with T >= 1, got shape {tuple(jnp.shape(xs))}")
    if step is not None:
        check_carry_map(step, carry0, xs[0], name="step", hint="give the carry and the inputs the parameters' dtype")


def flatten_step(step: Step, carry0):
    """``(flat_step, s0, unravel)``: ``step`` on the flat vector s (S,) of a pytree carry (``ravel_pytree``).

    S is the total size of the carry's leaves (2H for an LSTM's (h, c)); ``unravel(s)`` rebuilds
    the carry. A flat array carry (S,) passes through unchanged.
    """
    s0, unravel = ravel_pytree(carry0)
    return (lambda s, x: ravel_pytree(step(unravel(s), x))[0]), s0, unravel


def _safe_log(x):
    """log(x) with x clamped to the smallest normal float: a collapsed direction gives a very
    negative but finite number instead of -inf (e.g. dead ReLU units zero a Jacobian row)."""
    return jnp.log(jnp.maximum(x, jnp.finfo(x.dtype).tiny))


@_jit_boundary()
def states_of(step: Step, carry0, xs: jax.Array):
    """The carries c_1..c_T of ``c_t = step(c_{t-1}, x_t)`` by ``lax.scan``: a pytree like the carry, each (T, ...)."""
    _check_sequence(carry0, xs, step)
    _, cs = lax.scan(lambda c, x: (step(c, x),) * 2, carry0, xs)
    return cs


@_jit_boundary()
def jacobians_of(step: Step, carry0, xs: jax.Array) -> jax.Array:
    """Step Jacobians of any cell along one sequence, by ``jax.jacfwd``.

    Args:
      step: ``step(carry, x (D,)) -> carry``, any pytree carry.
      carry0: initial carry.
      xs: inputs (T, D).

    Returns:
      (T, S, S) over the flattened carry (:func:`flatten_step`), entry [t, i, j] = d s_t[i] / d s_{t-1}[j]
      (the report's J_t of §4.1, t = 1..T).
    """
    _check_sequence(carry0, xs, step)
    step, h0, _ = flatten_step(step, carry0)

    def body(h, x):
        f = lambda h_: (step(h_, x),) * 2
        J, h_next = jax.jacfwd(f, has_aux=True)(h)  # J_t = d h_t / d h_{t-1} (report §4.1)
        return h_next, J

    _, Js = lax.scan(body, h0, xs)
    return Js


GRADIENTS = ("exact", "frozen_states", "local")  # what jax.grad of lyapunov_of differentiates


def check_lyapunov_args(carry0, xs, *, warmup, num, reorth_every, gradient="exact", step=None) -> int:
    """Validate :func:`lyapunov_of`'s arguments; returns ``num`` with None resolved to S."""
    check_choice("gradient", gradient, GRADIENTS)
    _check_sequence(carry0, xs, step)
    S, T = sum(jnp.size(a) for a in jax.tree.leaves(carry0)), xs.shape[0]
    num = S if num is None else num
    check_positive_int("num", num)
    check_positive_int("reorth_every", reorth_every)
    if num > S:
        raise ValueError(f"num must be at most the state size S={S}, got {num}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup < T:
        raise ValueError(f"warmup must be an int with 0 <= warmup < T={T}, got {warmup!r}")
    return num


LYAPUNOV_STATUS = ("ok", "overflow", "collapsed")  # lyapunov_of(..., with_status=True)'s codes 0, 1, 2


@_jit_boundary("warmup", "num", "reorth_every", "gradient", "checkpoint", "with_status")
def lyapunov_of(step: Step, carry0, xs: jax.Array, *, warmup: int = 0, num: int | None = None,
                reorth_every: int = 1, gradient: str = "exact", checkpoint: bool = False,
                with_status: bool = False):
    """Lyapunov exponents of any cell driven by ``xs``, by QR re-orthonormalisation.

    Benettin's algorithm (Benettin et al. 1980; Vogt et al. 2022, Alg. 1; Engelken et al. 2023):
    carry an orthonormal frame Q (S, num); at every step push it through the step Jacobian by
    forward-mode products, Q' = J_t Q, and re-orthonormalise, Q' = Q_new R; then
    lambda_i = (1/(T - warmup)) sum_t log |R_t[i, i]|. Only one step's stretch is ever formed, so
    this is stable at any T (no product of Jacobians is accumulated).

    Args:
      step: ``step(carry, x (D,)) -> carry``, any pytree carry (its flattening, S numbers, is the state).
      carry0: initial carry.
      xs: inputs (T, D).
      warmup: steps run first (state and frame evolve) but not averaged, so the frame aligns
        with the growing directions before measuring; 0 <= warmup < T.
      num: how many exponents (1..S); all S when None.
      reorth_every: re-orthonormalise every this many steps (Engelken et al. 2023's t_ONS). 1 is
        the most accurate; k > 1 saves QRs but the frame's conditioning grows like
        exp(k (lambda_1 - lambda_num)), so keep k small when the spectrum is wide.
      gradient: what ``jax.grad`` differentiates, with respect to anything ``step`` closes over
        (parameters); the values returned are the same in every mode.

        * ``"exact"`` -- the derivative of the returned exponents: through the states, the frame
          and every QR (``jnp.linalg.qr``'s derivative needs R's diagonal away from zero, which
          holds unless a direction collapses exactly). Matches finite differences (tests). In a
          chaotic network (lambda_1 > 0) it grows like exp(lambda_1 T), since the states
          themselves depend on the parameters that sensitively.
        * ``"frozen_states"`` -- the states are held fixed (``lax.stop_gradient``): only each step
          Jacobian's explicit dependence on the parameters, carried through the frame.
        * ``"local"`` -- the states and the frame after each re-orthonormalisation are held
          fixed: the gradient of sum_t log |R_t[i, i]| one re-orthonormalisation block at a time
          (a per-step growth rate's gradient, averaged along the trajectory). Bounded at any T,
          and :func:`rnnjax.floss`'s default, by measurement (``docs/flossing.md``).
      checkpoint: wrap the scan body in ``jax.checkpoint``, so the gradient recomputes each
        step's Jacobian-frame product and QR instead of storing them.
      with_status: also return why exponents are NaN (see Returns).

    Cost of the gradient: a forward pass costs T Jacobian-frame products (num forward-mode
    products, ``jax.jvp``) and T QRs of (S, num) frames, O(T S num^2), in O(S num) memory; reverse
    mode adds about two to three times the compute and keeps every step's residuals -- the state,
    the frame Q and R -- O(T S num) floats per sequence, times the vmapped batch (measured by
    ``benchmarks/bench_flossing.py`` for S = 64, num = 32, T = 300 in float32: 14 MB exact, 12 MB
    local, against 0.03 MB for the forward pass). ``checkpoint=True`` keeps only the scan carry per
    step and recomputes the rest (2.6 MB there, for about 1.6x the time of a flossing step);
    ``reorth_every`` = k > 1 saves compute (a k-th of the QRs), not memory.

    Returns:
      (num,) exponents in nats per step, largest first; with ``with_status`` the pair
      ``(exponents, status)``, status an int32 index into :data:`LYAPUNOV_STATUS`:

      * 1 ``"overflow"``: the state stopped being finite (e.g. a ReLU network whose activity
        overflows); every exponent is NaN, since an overflowed state would otherwise fake a
        collapse (ReLU's derivative at NaN is 0).
      * 2 ``"collapsed"``: after the warm-up the state reached an exact fixed point
        (h_t == h_{t-1} bit for bit) at which the Jacobian annihilates a tracked direction
        (|R_ii| underflows to 0), e.g. a zero-bias ReLU network decaying to the all-zero state.
        That direction's exponent is -inf; it is reported NaN (listed last) instead of an
        average of log(tiny) that depends only on T and the float type. With ``num=1`` the one
        exponent is NaN.
      * 0 ``"ok"``. A direction that collapses while the state keeps moving (a rank-deficient
        Jacobian along a driven trajectory, e.g. dead ReLU units, with ``num`` above the rank)
        still contributes log(tiny) (~ -87 in float32) per re-orthonormalisation instead of
        -inf, so such trailing exponents read as very negative, finite.
    """
    num = check_lyapunov_args(carry0, xs, warmup=warmup, num=num, reorth_every=reorth_every, gradient=gradient,
                              step=step)
    step, h0, _ = flatten_step(step, carry0)
    S, T = h0.shape[0], xs.shape[0]
    hold_frame = lax.stop_gradient if gradient == "local" else (lambda Q: Q)
    hold_state = (lambda h: h) if gradient == "exact" else lax.stop_gradient

    def reorthonormalise(Q):
        # scale-safe: column i divided by m_i = max |Q_ji| first, so no square underflows or overflows;
        # QR(Q D^-1) = Q' R' gives R = R' D, log |R_ii| = log |R'_ii| + log m_i (Benettin et al. 1980)
        m = lax.stop_gradient(jnp.max(jnp.abs(Q), axis=0))  # (num,); a constant: the result is invariant to it
        live = m > 0
        Q = Q / jnp.where(live, m, 1.0)  # entries in [-1, 1]; a dead (zero) column stays zero
        if num == 1:  # QR of one column is its normalisation (no LAPACK call)
            r = jnp.linalg.norm(Q, axis=0)
            Q = Q / jnp.where(r > 0, r, 1.0)
        else:
            Q, R = jnp.linalg.qr(Q)  # J Q = Q' R (Benettin et al. 1980)
            r = jnp.abs(jnp.diagonal(R))
        log_m = jnp.log(jnp.where(live, m, 1.0))
        return hold_frame(Q), jnp.where(live, log_m + _safe_log(r), log_tiny)  # log |R_ii|: stretch of direction i

    log_tiny = jnp.log(jnp.finfo(h0.dtype).tiny)

    def body(carry, tx):
        h, Q, total, ok, dead = carry
        t, x = tx
        h = hold_state(h)
        f = lambda h_: step(h_, x)
        Q = jax.vmap(lambda v: jax.jvp(f, (h,), (v,))[1], in_axes=1, out_axes=1)(Q)  # J_t Q, forward mode
        if reorth_every == 1:
            Q, logs = reorthonormalise(Q)
        else:
            since = jnp.where(t < warmup, t + 1, t + 1 - warmup)  # steps since the last boundary
            due = (since % reorth_every == 0) | (t == warmup - 1) | (t == T - 1)
            Q, logs = lax.cond(due, reorthonormalise, lambda Q: (Q, jnp.zeros((num,), Q.dtype)), Q)
        total = total + jnp.where(t >= warmup, logs, 0.0)
        h_next = f(h)
        ok = ok & jnp.all(jnp.isfinite(h_next)) & jnp.all(jnp.isfinite(Q))
        fixed = (t >= warmup) & jnp.all(h_next == h)  # an exact fixed point: the state stopped changing
        dead = dead | (fixed & (logs <= log_tiny))  # ... where J_t annihilates direction i: lambda_i = -inf
        return (h_next, Q, total, ok, dead), None

    init = (h0, jnp.eye(S, num, dtype=h0.dtype), jnp.zeros((num,), h0.dtype), jnp.all(jnp.isfinite(h0)),
            jnp.zeros((num,), bool))
    (_, _, total, ok, dead), _ = lax.scan(jax.checkpoint(body) if checkpoint else body, init,
                                          (jnp.arange(T), xs))
    exponents = total / (T - warmup)  # lambda_i = (1/T) sum_t log |R_t[i, i]| (Benettin et al. 1980)
    exponents = -jnp.sort(-jnp.where(dead, jnp.nan, exponents))  # largest first, collapsed (NaN) last
    exponents = jnp.where(ok, exponents, jnp.nan)  # NaN: the state overflowed, no exponent
    if not with_status:
        return exponents
    return exponents, jnp.where(~ok, 1, jnp.where(dead.any(), 2, 0)).astype(jnp.int32)


def _backward_vjps(step: Step, carry0, xs: jax.Array, g_T, *, normalise: bool):
    """g_{t-1} = J_t^T g_t from t = T down to 1 on the flat state (report §4.1), optionally renormalised.

    Returns ``(flat states (T, S), g_T flat, per-step outputs in time order)``: with ``normalise`` the
    log norms log ||g_t|| (T,) (carried as a unit vector and a log norm, so no overflow), else the
    vectors dL_T/ds_t (T, S) themselves.
    """
    _check_sequence(carry0, xs, step)
    flat, s0, _ = flatten_step(step, carry0)
    g = ravel_pytree(g_T)[0]
    if g.shape != s0.shape or jax.tree.structure(g_T) != jax.tree.structure(carry0):
        raise ValueError(f"g_T must have the carry's structure and shapes {jax.tree.map(jnp.shape, carry0)}, "
                         f"got {jax.tree.map(jnp.shape, g_T)}")
    hs = states_of(flat, s0, xs)
    h_prev = jnp.concatenate([s0[None], hs[:-1]])  # s_{t-1} for t = 1..T

    def body(carry, hx):
        u, log_n = carry  # dL_T/ds_t = exp(log_n) u
        h, x = hx
        _, vjp = jax.vjp(lambda h_: flat(h_, x), h)
        v = vjp(u)[0]  # J_t^T u: one step further back (report §4.1)
        if not normalise:
            return (v, log_n), u
        n = jnp.linalg.norm(v)
        return (v / jnp.where(n > 0, n, 1.0), log_n + _safe_log(n)), log_n

    n0 = jnp.linalg.norm(g)
    init = (g / jnp.where(n0 > 0, n0, 1.0), _safe_log(n0)) if normalise else (g, jnp.zeros((), g.dtype))
    _, out = lax.scan(body, init, (h_prev, xs), reverse=True)
    return hs, g, out


@_jit_boundary()
def log_lag_profile_of(step: Step, carry0, xs: jax.Array, g_T) -> jax.Array:
    """log ||dL_T/ds_{T-k}|| for k = 0..T-1, by vector-Jacobian products backwards (overflow-free).

    g_{T-k} = J_{T-k+1}^T g_{T-k+1} (report §4.1), carried as a unit vector and a log norm; the
    norm is over the whole flattened carry.

    Args:
      step: ``step(carry, x (D,)) -> carry``, any pytree carry.
      carry0: initial carry.
      xs: inputs (T, D).
      g_T: dL_T/dcarry_T, a pytree like the carry.

    Returns:
      (T,) natural logs; entry k is log ||dL_T/ds_{T-k}|| (k = 0 gives log ||g_T||). All NaN when
      a state or g_T is not finite (overflow).
    """
    hs, g, logs = _backward_vjps(step, carry0, xs, g_T, normalise=True)
    ok = jnp.all(jnp.isfinite(hs)) & jnp.all(jnp.isfinite(g))
    return jnp.where(ok, logs[::-1], jnp.nan)  # flip so index k is the lag; NaN if the state overflowed


@_jit_boundary()
def state_grads_of(step: Step, carry0, xs: jax.Array, g_T):
    """dL_T/dcarry_t for t = 1..T given g_T = dL_T/dcarry_T: a pytree like the carry, each leaf (T, ...).

    The vectors themselves (not renormalised, so a vanished part reads as 0 and an exploded one may
    overflow), so the gradient can be split into the carry's parts -- an LSTM's ``h`` and ``c``.
    Row t-1 of each leaf belongs to carry_t (time order, unlike the lag order of :func:`log_lag_profile_of`).
    """
    _, _, gs = _backward_vjps(step, carry0, xs, g_T, normalise=False)
    _, _, unravel = flatten_step(step, carry0)
    return jax.vmap(unravel)(gs)


@_jit_boundary()
def lag_profile_of(step: Step, carry0, xs: jax.Array, g_T) -> jax.Array:
    """||dL_T/ds_{T-k}|| for k = 0..T-1 given g_T = dL_T/dcarry_T: ``exp`` of :func:`log_lag_profile_of`.

    Returns (T,); k = 0 gives ||g_T||. Use the log version for long, exploding sequences.
    """
    return jnp.exp(log_lag_profile_of(step, carry0, xs, g_T))


@jax.jit
def _product_log_singular_values(Js):
    ok = jnp.all(jnp.isfinite(Js))
    Js = jnp.where(ok, Js, 0.0)  # never hand LAPACK a NaN; the result is NaN below instead

    def body(carry, J):
        P, log_c = carry  # P_k = exp(log_c) P
        P = P @ J  # P_k = P_{k-1} J_{T-k+1}
        c = jnp.linalg.norm(P)
        P = P / jnp.where(c > 0, c, 1.0)
        log_c = log_c + _safe_log(c)
        return (P, log_c), log_c + _safe_log(jnp.linalg.svd(P, compute_uv=False))

    S = Js.shape[1]
    init = (jnp.eye(S, dtype=Js.dtype), jnp.zeros((), Js.dtype))
    _, logs = lax.scan(body, init, Js, reverse=True)
    return jnp.where(ok, logs[::-1], jnp.nan)  # reverse scan emits P_k at index T-k; flip so row k-1 is P_k


def product_log_singular_values(Js: jax.Array) -> jax.Array:
    """log singular values of the backward products P_k = J_T J_{T-1} ... J_{T-k+1}, k = 1..T.

    P_k = d h_T / d h_{T-k} maps a change k steps back to the last state; its singular values
    bound ||dL_T/dh_{T-k}|| / ||dL_T/dh_T|| from above (largest) and below (smallest). The product
    is carried with its Frobenius norm factored out, so no overflow at long T.

    Args:
      Js: step Jacobians (T, S, S) as returned by :func:`jacobians_of`.

    Returns:
      (T, S): row k-1 holds log sigma_1 >= ... >= log sigma_S of P_k (nats).
    """
    if Js.ndim != 3 or Js.shape[1] != Js.shape[2]:
        raise ValueError(f"Js must have shape (T, S, S), got {tuple(Js.shape)}")
    return _product_log_singular_values(Js)


def report_bound(W_hh: jax.Array, lags: jax.Array, *, activation: str = "tanh", log: bool = False) -> jax.Array:
    """The report's bound (gamma ||W_hh||_2)^k on ||P_k|| (report §4.1), per lag k.

    Args:
      W_hh: (H, H) recurrent weights.
      lags: integer lags k (any shape).
      activation: sets gamma = sup |phi'| (tanh 1, sigmoid 1/4, relu 1, linear 1).
      log: return k log(gamma ||W_hh||_2) instead (no overflow).
    """
    gamma = get_activation(activation).gamma
    log_rate = jnp.log(gamma * jnp.linalg.svd(W_hh, compute_uv=False)[0])  # log(gamma ||W_hh||_2) (§4.1)
    logs = jnp.asarray(lags, W_hh.dtype) * log_rate
    return logs if log else jnp.exp(logs)


def lag_slope(log_profile: jax.Array, *, skip: int = 0) -> jax.Array:
    """Least-squares slope (nats per step) of a log lag profile (..., K) against k, from lag ``skip`` on.

    For long sequences it approaches the top Lyapunov exponent: < 0 vanishing, > 0 exploding.
    """
    y = log_profile[..., skip:]
    k = jnp.arange(y.shape[-1], dtype=y.dtype)
    kc = k - k.mean()
    return jnp.sum(kc * (y - y.mean(-1, keepdims=True)), -1) / jnp.sum(kc**2)  # OLS slope


# ----------------------------------------------------------------------------------------------
# The vanilla RNN of report §1.2
# ----------------------------------------------------------------------------------------------


def rnn_step(params: RNNParams, *, activation: str = "tanh") -> Partial:
    """The vanilla cell's step ``h_{t-1}, x_t -> h_t`` (report §1.2) with ``params`` bound (:func:`cell_step`)."""
    return cell_step(vanilla(activation), params)


def _h0(params: RNNParams, xs, h0):
    check_inputs(params, xs, h0)
    return initial_state(params, (), h0)


def step_jacobians(params: RNNParams, xs: jax.Array, *, activation: str = "tanh", h0=None) -> jax.Array:
    """J_t = d h_t / d h_{t-1} (T, H, H) of the vanilla RNN along ``xs (T, D)``: :func:`jacobians_of` of its step.

    Entry [t, i, j] = d h_t[i] / d h_{t-1}[j] = phi'(a_t[i]) W_hh[j, i], i.e. the report's
    J_t = diag(phi'(a_t)) W_hh^T (§4.1). ``h0`` (H,) defaults to zeros.
    """
    return jacobians_of(rnn_step(params, activation=activation), _h0(params, xs, h0), xs)


def lyapunov_spectrum(params: RNNParams, xs: jax.Array, *, activation: str = "tanh", h0=None,
                      warmup: int = 0, num: int | None = None, reorth_every: int = 1,
                      gradient: str = "exact") -> jax.Array:
    """Lyapunov exponents (num,) of the vanilla RNN driven by ``xs (T, D)``, nats/step, largest first.

    :func:`lyapunov_of` of its step; all H exponents when ``num`` is None. Differentiable with
    respect to ``params`` (``gradient`` as in :func:`lyapunov_of`).
    """
    return lyapunov_of(rnn_step(params, activation=activation), _h0(params, xs, h0), xs, warmup=warmup, num=num,
                       reorth_every=reorth_every, gradient=gradient)


def last_step_state_grad(params: RNNParams, xs: jax.Array, targets: jax.Array, *, loss: str = "xent",
                         activation: str = "tanh", h0=None) -> jax.Array:
    """g_T = dL_T/dh_T (H,): the gradient of the last step's loss term w.r.t. the last state.

    L_T is the per-step loss at t = T ((dL/do_T) W_ho^T, report §2.2); ``targets`` as for
    :func:`rnnjax.loss_and_grad` with one sequence.
    """
    check_inputs(params, xs, h0)
    check_targets(loss, xs.shape[:-1] + (params.W_ho.shape[1],), targets)
    _, outputs = rnn_forward(params, xs, h0, activation=activation)
    return get_loss(loss).grad(outputs, targets)[-1] @ params.W_ho.T  # dL_T/dh_T = (dL/do_T) W_ho^T (§2.2)


def lag_profile(params: RNNParams, xs: jax.Array, targets: jax.Array, *, loss: str = "xent",
                activation: str = "tanh", h0=None, log: bool = False) -> jax.Array:
    """||dL_T/dh_{T-k}|| (T,) for k = 0..T-1 of the vanilla RNN, L_T the last step's loss term:
    :func:`log_lag_profile_of` of its step from g_T = dL_T/dh_T.

    ``log=True`` returns natural logs (use it for long or exploding sequences).
    """
    g_T = last_step_state_grad(params, xs, targets, loss=loss, activation=activation, h0=h0)
    logs = log_lag_profile_of(rnn_step(params, activation=activation), _h0(params, xs, h0), xs, g_T)
    return logs if log else jnp.exp(logs)
