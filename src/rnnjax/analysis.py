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

Generic functions take a step ``step(h (S,), x (D,)) -> h_next (S,)`` over a flat state, so gated
cells (LSTM, GRU) reuse them; ``step_jacobians``, ``lyapunov_spectrum`` and ``lag_profile`` are the
vanilla-RNN conveniences built on :func:`rnnjax.cells.rnn_cell`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax._checks import check_positive_int
from rnnjax.activations import get_activation
from rnnjax.cells import RNNParams, rnn_cell
from rnnjax.forward import check_inputs, initial_state, rnn_forward
from rnnjax.losses import check_targets, get_loss

Step = Callable[[jax.Array, jax.Array], jax.Array]


def _check_sequence(h0, xs) -> None:
    if jnp.ndim(h0) != 1:
        raise ValueError(f"h0 must be a flat state of shape (S,), got shape {tuple(jnp.shape(h0))}")
    if jnp.ndim(xs) != 2 or xs.shape[0] < 1:
        raise ValueError(f"xs must have shape (T, D) with T >= 1, got shape {tuple(jnp.shape(xs))}")


def _safe_log(x):
    """log(x) with x clamped to the smallest normal float: a collapsed direction gives a very
    negative but finite number instead of -inf (e.g. dead ReLU units zero a Jacobian row)."""
    return jnp.log(jnp.maximum(x, jnp.finfo(x.dtype).tiny))


def states_of(step: Step, h0: jax.Array, xs: jax.Array) -> jax.Array:
    """The states h_1..h_T (T, S) of ``h_t = step(h_{t-1}, x_t)``, through ``lax.scan``."""
    _check_sequence(h0, xs)
    _, hs = lax.scan(lambda h, x: (step(h, x),) * 2, h0, xs)
    return hs


def jacobians_of(step: Step, h0: jax.Array, xs: jax.Array) -> jax.Array:
    """Step Jacobians of any cell along one sequence, by ``jax.jacfwd``.

    Args:
      step: ``step(h (S,), x (D,)) -> h_next (S,)``.
      h0: initial state (S,).
      xs: inputs (T, D).

    Returns:
      (T, S, S), entry [t, i, j] = d h_t[i] / d h_{t-1}[j] (the report's J_t of §4.1, t = 1..T).
    """
    _check_sequence(h0, xs)

    def body(h, x):
        f = lambda h_: (step(h_, x),) * 2
        J, h_next = jax.jacfwd(f, has_aux=True)(h)  # J_t = d h_t / d h_{t-1} (report §4.1)
        return h_next, J

    _, Js = lax.scan(body, h0, xs)
    return Js


def check_lyapunov_args(h0, xs, *, warmup, num, reorth_every) -> int:
    """Validate :func:`lyapunov_of`'s arguments; returns ``num`` with None resolved to S."""
    _check_sequence(h0, xs)
    S, T = h0.shape[0], xs.shape[0]
    num = S if num is None else num
    check_positive_int("num", num)
    check_positive_int("reorth_every", reorth_every)
    if num > S:
        raise ValueError(f"num must be at most the state size S={S}, got {num}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup < T:
        raise ValueError(f"warmup must be an int with 0 <= warmup < T={T}, got {warmup!r}")
    return num


def lyapunov_of(step: Step, h0: jax.Array, xs: jax.Array, *, warmup: int = 0, num: int | None = None,
                reorth_every: int = 1) -> jax.Array:
    """Lyapunov exponents of any cell driven by ``xs``, by QR re-orthonormalisation.

    Benettin's algorithm (Benettin et al. 1980; Vogt et al. 2022, Alg. 1; Engelken et al. 2023):
    carry an orthonormal frame Q (S, num); at every step push it through the step Jacobian by
    forward-mode products, Q' = J_t Q, and re-orthonormalise, Q' = Q_new R; then
    lambda_i = (1/(T - warmup)) sum_t log |R_t[i, i]|. Only one step's stretch is ever formed, so
    this is stable at any T (no product of Jacobians is accumulated).

    Args:
      step: ``step(h (S,), x (D,)) -> h_next (S,)``.
      h0: initial state (S,).
      xs: inputs (T, D).
      warmup: steps run first (state and frame evolve) but not averaged, so the frame aligns
        with the growing directions before measuring; 0 <= warmup < T.
      num: how many exponents (1..S); all S when None.
      reorth_every: re-orthonormalise every this many steps (Engelken et al. 2023's t_ONS). 1 is
        the most accurate; k > 1 saves QRs but the frame's conditioning grows like
        exp(k (lambda_1 - lambda_num)), so keep k small when the spectrum is wide.

    Returns:
      (num,) exponents in nats per step, largest first; all NaN when the state itself stopped
      being finite (e.g. a ReLU network whose activity overflows), since an overflowed state
      would otherwise fake a collapse (ReLU's derivative at NaN is 0). A direction that collapses exactly
      (a rank-deficient Jacobian, e.g. dead ReLU units) contributes log(tiny) (~ -87 in float32)
      per re-orthonormalisation instead of -inf, so such exponents read as very negative, finite.
    """
    num = check_lyapunov_args(h0, xs, warmup=warmup, num=num, reorth_every=reorth_every)
    S, T = h0.shape[0], xs.shape[0]

    def reorthonormalise(Q):
        if num == 1:  # QR of one column is its normalisation (no LAPACK call)
            n = jnp.linalg.norm(Q, axis=0)
            return Q / jnp.where(n > 0, n, 1.0), _safe_log(n)
        Q, R = jnp.linalg.qr(Q)  # J Q = Q' R (Benettin et al. 1980)
        return Q, _safe_log(jnp.abs(jnp.diagonal(R)))  # log |R_ii|: stretch of direction i

    def body(carry, tx):
        h, Q, total, ok = carry
        t, x = tx
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
        return (h_next, Q, total, ok), None

    init = (h0, jnp.eye(S, num, dtype=h0.dtype), jnp.zeros((num,), h0.dtype), jnp.all(jnp.isfinite(h0)))
    (_, _, total, ok), _ = lax.scan(body, init, (jnp.arange(T), xs))
    exponents = total / (T - warmup)  # lambda_i = (1/T) sum_t log |R_t[i, i]| (Benettin et al. 1980)
    return jnp.where(ok, -jnp.sort(-exponents), jnp.nan)  # NaN: the state overflowed, no exponent


def log_lag_profile_of(step: Step, h0: jax.Array, xs: jax.Array, g_T: jax.Array) -> jax.Array:
    """log ||dL_T/dh_{T-k}|| for k = 0..T-1, by vector-Jacobian products backwards (overflow-free).

    g_{T-k} = J_{T-k+1}^T g_{T-k+1} (report §4.1), carried as a unit vector and a log norm.

    Args:
      step: ``step(h (S,), x (D,)) -> h_next (S,)``.
      h0: initial state (S,).
      xs: inputs (T, D).
      g_T: dL_T/dh_T (S,).

    Returns:
      (T,) natural logs; entry k is log ||dL_T/dh_{T-k}|| (k = 0 gives log ||g_T||). All NaN when
      a state or g_T is not finite (overflow).
    """
    _check_sequence(h0, xs)
    if g_T.shape != h0.shape:
        raise ValueError(f"g_T must have the state's shape {tuple(h0.shape)}, got {tuple(g_T.shape)}")
    hs = states_of(step, h0, xs)
    h_prev = jnp.concatenate([h0[None], hs[:-1]])  # h_{t-1} for t = 1..T
    n0 = jnp.linalg.norm(g_T)

    def body(carry, hx):
        u, log_n = carry  # dL_T/dh_t = exp(log_n) u, ||u|| = 1
        h, x = hx
        _, vjp = jax.vjp(lambda h_: step(h_, x), h)
        v = vjp(u)[0]  # J_t^T u: one step further back (report §4.1)
        n = jnp.linalg.norm(v)
        return (v / jnp.where(n > 0, n, 1.0), log_n + _safe_log(n)), log_n

    init = (g_T / jnp.where(n0 > 0, n0, 1.0), _safe_log(n0))
    _, logs = lax.scan(body, init, (h_prev, xs), reverse=True)
    ok = jnp.all(jnp.isfinite(hs)) & jnp.all(jnp.isfinite(g_T))
    return jnp.where(ok, logs[::-1], jnp.nan)  # flip so index k is the lag; NaN if the state overflowed


def lag_profile_of(step: Step, h0: jax.Array, xs: jax.Array, g_T: jax.Array) -> jax.Array:
    """||dL_T/dh_{T-k}|| for k = 0..T-1 given g_T = dL_T/dh_T (S,): ``exp`` of :func:`log_lag_profile_of`.

    Returns (T,); k = 0 gives ||g_T||. Use the log version for long, exploding sequences.
    """
    return jnp.exp(log_lag_profile_of(step, h0, xs, g_T))


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


def rnn_step(params: RNNParams, *, activation: str = "tanh") -> Step:
    """The vanilla cell as a flat step ``h_{t-1}, x_t -> h_t`` (report §1.2) for the generic functions."""
    get_activation(activation)
    return lambda h, x: rnn_cell(params, h, x, activation=activation)[0]


def _h0(params: RNNParams, xs, h0):
    check_inputs(params, xs, h0)
    return initial_state(params, (), h0)


@partial(jax.jit, static_argnames=("activation",))
def _step_jacobians(params, xs, h0, *, activation):
    return jacobians_of(rnn_step(params, activation=activation), h0, xs)


def step_jacobians(params: RNNParams, xs: jax.Array, *, activation: str = "tanh", h0=None) -> jax.Array:
    """J_t = d h_t / d h_{t-1} (T, H, H) of the vanilla RNN along ``xs (T, D)``, by ``jax.jacfwd``.

    Entry [t, i, j] = d h_t[i] / d h_{t-1}[j] = phi'(a_t[i]) W_hh[j, i], i.e. the report's
    J_t = diag(phi'(a_t)) W_hh^T (§4.1). ``h0`` (H,) defaults to zeros. Jitted.
    """
    get_activation(activation)
    return _step_jacobians(params, xs, _h0(params, xs, h0), activation=activation)


def lyapunov_spectrum(params: RNNParams, xs: jax.Array, *, activation: str = "tanh", h0=None,
                      warmup: int = 0, num: int | None = None, reorth_every: int = 1) -> jax.Array:
    """Lyapunov exponents (num,) of the vanilla RNN driven by ``xs (T, D)``, nats/step, largest first.

    See :func:`lyapunov_of`; all H exponents when ``num`` is None. Jitted.
    """
    get_activation(activation)
    h0 = _h0(params, xs, h0)
    check_lyapunov_args(h0, xs, warmup=warmup, num=num, reorth_every=reorth_every)
    return _lyapunov_spectrum(params, xs, h0, activation=activation, warmup=warmup, num=num,
                              reorth_every=reorth_every)


@partial(jax.jit, static_argnames=("activation", "warmup", "num", "reorth_every"))
def _lyapunov_spectrum(params, xs, h0, *, activation, warmup, num, reorth_every):
    return lyapunov_of(rnn_step(params, activation=activation), h0, xs, warmup=warmup, num=num,
                       reorth_every=reorth_every)


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
    """||dL_T/dh_{T-k}|| (T,) for k = 0..T-1 of the vanilla RNN, L_T the last step's loss term.

    ``log=True`` returns natural logs (use it for long or exploding sequences).
    """
    get_activation(activation)
    check_targets(loss, xs.shape[:-1] + (params.W_ho.shape[1],), targets)
    logs = _log_lag_profile(params, xs, targets, _h0(params, xs, h0), loss=loss, activation=activation)
    return logs if log else jnp.exp(logs)


@partial(jax.jit, static_argnames=("loss", "activation"))
def _log_lag_profile(params, xs, targets, h0, *, loss, activation):
    g_T = last_step_state_grad(params, xs, targets, loss=loss, activation=activation, h0=h0)
    return log_lag_profile_of(rnn_step(params, activation=activation), h0, xs, g_T)
