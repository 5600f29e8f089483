"""The vanilla RNN of report §1.2 as a cell: its step, its whole-sequence forward, and the hand BPTT of §2.2.

    a_t = x_t W_xh + b_h + h_{t-1} W_hh          (report §1.2)
    h_t = phi_h(a_t)                              (report §1.2)
    o_t = h_t W_ho + b_o                          (report §1.2, phi_o = identity; in rnnjax.Readout)

Shapes: x_t (D,), h_t (H,), W_xh (D, H), W_hh (H, H), b_h (H,), W_ho (H, O), b_o (O,).

The backward pass, written out by hand as in min-char-rnn (report §2.2), given g_t = dL/dh_t from
everything downstream of h_t (the read-out and the loss, by autodiff)::

    dL/dh_t  = g_t + delta_{t+1} W_hh^T           what reaches h_t, now and from the future
    delta_t  = dL/dh_t ⊙ phi'(a_t)                 the report's hidden error (phi' read off h_t)
    dL/dW_xh = sum_t x_t^T delta_t,   dL/dW_hh = sum_t h_{t-1}^T delta_t,   dL/db_h = sum_t delta_t
    dL/dx_t  = delta_t W_xh^T,        dL/dh_0  = delta_1 W_hh^T

It is the gradient of the cell's whole-sequence path (a ``jax.custom_vjp``), so ``jax.grad``,
:func:`rnnjax.fit`, the sweeps and every loss use it: method ``"bptt"``; ``"autograd"`` lets JAX
differentiate the same forward; ``"auto"`` (the default) is the hand BPTT on CPU and ``jax.grad``
on accelerators (:func:`resolve_method`). For a batch the backward contracts the batch inside
its reverse scan (one (D+1+H, B) x (B, H) product per step), so no per-sequence weight gradient
is ever formed.

Internally a batch is stored *feature-major*, ``(T, F, B)``: the batch is then the minor axis that
XLA:CPU vectorises, about twice as fast as ``(B, F)`` rows for the recurrence. One sequence is the
report's ``(T, F)`` layout, with the input term x_t W_xh + b_h done for all t before the scan.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax._checks import check_choice, check_positive_int
from rnnjax.activations import get_activation
from rnnjax.cells.base import Cell, identity
from rnnjax.cells.init import RECURRENT_INITS, init_recurrent


class VanillaParams(NamedTuple):
    """The vanilla cell's parameters (a PyTree); the read-out lives in :class:`rnnjax.Readout`."""

    W_xh: jax.Array  # (D, H) input -> hidden
    W_hh: jax.Array  # (H, H) hidden -> hidden (row convention: h_{t-1} W_hh)
    b_h: jax.Array  # (H,)


class RNNParams(NamedTuple):
    """The report's whole model: the vanilla cell and its linear read-out, five fields (a PyTree).

    It is the flat form of ``ModelParams(VanillaParams(W_xh, W_hh, b_h), Readout(W_ho, b_o))``:
    :attr:`cell` and :attr:`readout` give those views, so every generic function that takes a
    model (:func:`rnnjax.predict`, :func:`rnnjax.make_loss`, :func:`rnnjax.fit`) takes an
    ``RNNParams`` too, and its gradients come back as ``RNNParams``.
    """

    W_xh: jax.Array  # (D, H) input -> hidden
    W_hh: jax.Array  # (H, H) hidden -> hidden (row convention: h_{t-1} W_hh)
    b_h: jax.Array  # (H,)
    W_ho: jax.Array  # (H, O) hidden -> output
    b_o: jax.Array  # (O,)

    @property
    def cell(self) -> VanillaParams:
        return VanillaParams(self.W_xh, self.W_hh, self.b_h)

    @property
    def readout(self):
        from rnnjax.scan import Readout  # the read-out is model code, defined with the generic losses

        return Readout(self.W_ho, self.b_o)


def init_rnn(key: jax.Array, input_size: int, hidden_size: int, output_size: int, *, rho=1.0,
             recurrent_init: str = "gaussian", input_std=None, output_std=None,
             dtype=jnp.float32) -> RNNParams:
    """Seeded initial :class:`RNNParams`.

    W_hh follows ``recurrent_init`` (see :func:`rnnjax.init_recurrent`). Input and output weights
    default to LeCun-normal scales, W_xh ~ N(0, std 1/sqrt(D)) and W_ho ~ N(0, std 1/sqrt(H)), which
    keep x_t W_xh and h_t W_ho at unit-order variance; ``input_std``/``output_std`` override them.
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


def rnn_cell(params, h_prev: jax.Array, x: jax.Array, *, activation: str = "tanh"):
    """One step: ``(h_t, a_t)`` for ``h_prev (..., H)`` and ``x (..., D)``; ``params`` needs W_xh, W_hh, b_h."""
    a = x @ params.W_xh + params.b_h + h_prev @ params.W_hh  # a_t = x_t W_xh + b_h + h_{t-1} W_hh (§1.2)
    return get_activation(activation).phi(a), a  # h_t = phi_h(a_t) (§1.2)


# ------------------------------------------------------------------ the gradient method

METHODS = ("auto", "bptt", "autograd")


def resolve_method(method: str, like=None) -> str:
    """The gradient method ``method`` names: ``"auto"`` is ``"bptt"`` on CPU and ``"autograd"`` elsewhere.

    The rule, measured (``benchmarks/bench_core.py``): on CPU the hand BPTT takes 0.24x the time of
    ``jax.grad`` at Experiment 1's shape (B = 6,366, T = 20, H = 16) and the same at Experiment 2's
    (T = 50, H = 50, one sequence); on a GPU (one H200) it took 3.6x the time of ``jax.grad`` at
    Experiment 1's shape: its in-scan accumulation, right for a CPU's caches, serialises work a GPU
    runs in parallel. The platform is that of ``like`` when it is an array already on a device,
    else JAX's default backend (inside ``jit`` or ``vmap``, where arrays are traced).
    """
    check_choice("method", method, METHODS)
    if method != "auto":
        return method
    platform = None
    if isinstance(like, jax.Array) and not isinstance(like, jax.core.Tracer):
        platform = next(iter(like.devices())).platform
    return "bptt" if (platform or jax.default_backend()) == "cpu" else "autograd"


# ------------------------------------------------------------------ the whole-sequence path


def times_t(v: jax.Array, W_T: jax.Array) -> jax.Array:
    """``v W`` for ``v`` stored feature-major ``(F, *batch)`` and ``W`` given transposed, ``W_T (K, F)``.

    It contracts W_T's minor (contiguous) axis: vmapped over many matrices (a sweep over runs) XLA:CPU
    runs this mat-vec ~1.4x faster than a contraction over the major axis (``benchmarks/bench_sweeps.py``).
    So ``delta W^T`` is ``times_t(delta, W)``, no transpose needed.
    """
    return jnp.tensordot(W_T, v, axes=(1, 0))  # (v W)_k = sum_f W_T[k, f] v_f


def _sum_outer(u: jax.Array, v: jax.Array) -> jax.Array:
    """u^T v summed over the batch: ``(F, *batch), (G, *batch) -> (F, G)``."""
    batch = tuple(range(1, u.ndim))
    return jnp.tensordot(u, v, axes=(batch, batch))


def _forward(params: VanillaParams, xs: jax.Array, h0: jax.Array, phi) -> jax.Array:
    """h_1..h_T by ``lax.scan``: ``xs (T, D, *batch)``, ``h0 (H, *batch)`` -> ``(T, H, *batch)``, feature-major."""
    batched = h0.ndim > 1
    b_h = params.b_h.reshape(params.b_h.shape + (1,) * (h0.ndim - 1))  # (H, 1...): one column per example
    # one sequence: x_t W_xh + b_h for all t in one (T, D) x (D, H) matmul before the scan; a batch keeps it
    # in the step (a (T, H, B) array of input terms costs more memory traffic than the product saves)
    inputs = xs if batched else xs @ params.W_xh + params.b_h
    W_xh_T, W_hh_T = params.W_xh.T, params.W_hh.T  # once, outside the loop (see times_t)

    def step(h_prev, u_t):
        xw_t = times_t(u_t, W_xh_T) + b_h if batched else u_t  # x_t W_xh + b_h
        h = phi(xw_t + times_t(h_prev, W_hh_T))  # h_t = phi(x_t W_xh + b_h + h_{t-1} W_hh) (§1.2)
        return h, h

    return lax.scan(step, h0, inputs)[1]


def _backward(params: VanillaParams, xs, hs, h0, g, dphi_h, *, want_dxs: bool = True, want_dh0: bool = True):
    """The hand BPTT of report §2.2 (module docstring), feature-major: ``xs (T, D, *b)``, ``hs, g (T, H, *b)``,
    ``h0 (H, *b)``. Returns ``(VanillaParams of gradients summed over t and the batch, dL/dxs, dL/dh_0)``;
    dL/dxs and dL/dh_0 are None unless wanted (the data and the zero state usually need none)."""
    D = xs.shape[1]
    batched = h0.ndim > 1
    h_prev = jnp.concatenate([h0[None], hs[:-1]])  # h_{t-1} for t = 1..T
    z = jnp.concatenate([xs, jnp.ones_like(xs[:, :1]), h_prev], axis=1)  # z_t = [x_t, 1, h_{t-1}] (T, D+1+H, *b)
    keep_deltas = want_dxs or not batched

    def step(carry, inputs):
        delta_next, G = carry  # delta_{t+1}; for a batch, the sum over s > t of z_s^T delta_s
        g_t, h_t, z_t = inputs
        delta = (g_t + times_t(delta_next, params.W_hh)) * dphi_h(h_t)  # delta_t = (g_t + delta_{t+1} W_hh^T) ⊙ phi'
        if batched:  # contract the batch here, step by step: no (T, H, B) array of deltas is needed
            G = G + _sum_outer(z_t, delta)  # dL/d[W_xh; b_h; W_hh] += [x_t, 1, h_{t-1}]^T delta_t (§2.2)
        return (delta, G), (delta if keep_deltas else None)

    G0 = jnp.zeros((z.shape[1], hs.shape[1]), hs.dtype) if batched else None
    (delta_1, G), deltas = lax.scan(step, (jnp.zeros_like(h0), G0), (g, hs, z), reverse=True)
    if not batched:  # one sequence: the three sums are one matmul over t after the scan
        G = z.T @ deltas  # dL/d[W_xh; b_h; W_hh] = sum_t [x_t, 1, h_{t-1}]^T delta_t (§2.2)
    grads = VanillaParams(W_xh=G[:D], W_hh=G[D + 1:], b_h=G[D])
    dxs = dh0 = None
    if want_dxs:
        W_t = jnp.broadcast_to(params.W_xh, (xs.shape[0],) + params.W_xh.shape)  # (T, D, H): a matmul batched over t
        dxs = jnp.einsum("tdh,th...->td...", W_t, deltas)  # dL/dx_t = delta_t W_xh^T
    if want_dh0:
        dh0 = times_t(delta_1, params.W_hh)  # dL/dh_0 = delta_1 W_hh^T
    return grads, dxs, dh0


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _hand(activation: str, params: VanillaParams, xs, h0):
    return _forward(params, xs, h0, get_activation(activation).phi)


def _hand_fwd(activation, params, xs, h0):
    params = VanillaParams(*(leaf.value for leaf in params))  # symbolic zeros: each input says if it is perturbed
    xs, h0, want_dxs, want_dh0 = xs.value, h0.value, xs.perturbed, h0.perturbed
    hs = _forward(params, xs, h0, get_activation(activation).phi)
    # the backward needs the states only (phi'(a_t) is read off h_t), and dL/dxs, dL/dh_0 only if asked for
    return hs, (params, xs, h0, hs, want_dxs, want_dh0)


def _hand_bwd(activation, residuals, g):
    params, xs, h0, hs, want_dxs, want_dh0 = residuals
    return _backward(params, xs, hs, h0, g, get_activation(activation).dphi_h, want_dxs=want_dxs, want_dh0=want_dh0)


_hand.defvjp(_hand_fwd, _hand_bwd, symbolic_zeros=True)


def to_feature_major(a: jax.Array) -> jax.Array:
    """``(*batch, T, F) -> (T, F, *batch)``."""
    nb = a.ndim - 2
    return jnp.transpose(a, (nb, nb + 1) + tuple(range(nb)))


def from_feature_major(a: jax.Array) -> jax.Array:
    """``(T, F, *batch) -> (*batch, T, F)``, the inverse of :func:`to_feature_major`."""
    return jnp.transpose(a, tuple(range(2, a.ndim)) + (0, 1))


def vanilla_unroll(params, xs: jax.Array, h0: jax.Array, readout=None, *, activation: str = "tanh",
                   method: str = "auto"):
    """The vanilla cell over whole sequences: ``xs (*batch, T, D)``, ``h0 (*batch, H)`` -> ``(hs (*batch, T, H), h_T)``.

    With ``readout`` (a :class:`rnnjax.Readout`) the first result is the read-outs y_t = h_t W_ho + b_o
    (*batch, T, O) instead, computed in the internal layout (for a batch that saves transposing every
    h_t). ``method="bptt"`` differentiates by the hand BPTT (:func:`_backward`), ``"autograd"`` by
    ``jax.grad`` of the same scan, ``"auto"`` by :func:`resolve_method`. ``params`` needs W_xh, W_hh, b_h.
    """
    p = VanillaParams(params.W_xh, params.W_hh, params.b_h)
    xs_fm, h0_fm = to_feature_major(xs), jnp.moveaxis(h0, -1, 0)
    if resolve_method(method) == "bptt":
        run = partial(_hand, activation)  # its gradient: the hand BPTT
    else:
        run = partial(_forward, phi=get_activation(activation).phi)  # its gradient: jax.grad of the scan
    hs = run(p, xs_fm, h0_fm)  # (T, H, *batch)
    h_T = jnp.moveaxis(hs[-1], 0, -1)
    if readout is None:
        return from_feature_major(hs), h_T
    if hs.ndim == 2:  # one sequence: the report's (T, H) layout
        return hs @ readout.W_ho + readout.b_o, h_T  # y_t = h_t W_ho + b_o (§1.2)
    b_o = readout.b_o.reshape(readout.b_o.shape + (1,) * (hs.ndim - 2))
    # W_ho^T broadcast along t makes this a matmul batched over t, which XLA:CPU runs (and differentiates)
    # without transposing the (T, H, *batch) states
    W_t = jnp.broadcast_to(readout.W_ho.T, (hs.shape[0],) + readout.W_ho.T.shape)  # (T, O, H)
    ys = jnp.einsum("toh,th...->to...", W_t, hs) + b_o  # y_t = h_t W_ho + b_o (§1.2), (T, O, *batch)
    return from_feature_major(ys), h_T


# ------------------------------------------------------------------ the cell


@dataclass(frozen=True)
class _Init:
    """``init(key, D, H) -> VanillaParams`` as :func:`init_rnn` draws them; equal when its options are."""

    rho: object
    recurrent_init: str
    input_std: object
    dtype: object

    def __call__(self, key, input_size, hidden_size):
        return init_rnn(key, input_size, hidden_size, 1, rho=self.rho, recurrent_init=self.recurrent_init,
                        input_std=self.input_std, dtype=self.dtype).cell

    def _key(self):
        try:
            return hash(astuple(self)), astuple(self)
        except TypeError:  # an array option (a traced rho): equal to itself only
            return id(self), (id(self),)

    def __hash__(self):
        return self._key()[0]

    def __eq__(self, other):
        return type(other) is _Init and self._key()[1] == other._key()[1]


@dataclass(frozen=True)
class _Step:
    """``step(params, h, x) -> h'`` for one activation (a value: two equal steps compile once)."""

    activation: str

    def __call__(self, params, h, x):
        return rnn_cell(params, h, x, activation=self.activation)[0]  # h_t = phi(a_t) (§1.2)


@dataclass(frozen=True)
class _Unroll:
    """The cell's whole-sequence path, :func:`vanilla_unroll` for one activation and gradient method."""

    activation: str
    method: str

    def __call__(self, params, xs, h0, readout=None):
        return vanilla_unroll(params, xs, h0, readout, activation=self.activation, method=self.method)


def _initial_carry(params):
    return jnp.zeros(params.b_h.shape, params.W_hh.dtype)  # h_0 = 0


def vanilla(activation: str = "tanh", *, rho=1.0, recurrent_init: str = "gaussian", input_std=None,
            dtype=jnp.float32, method: str = "auto") -> Cell:
    """The vanilla RNN cell of report §1.2 as a :class:`rnnjax.Cell`: carry h (H,), params :class:`VanillaParams`.

    ``init`` draws W_xh ~ N(0, std ``input_std``, default 1/sqrt(D)), W_hh from
    :func:`rnnjax.init_recurrent` (``recurrent_init``, scaled by ``rho``) and b_h = 0, exactly as
    :func:`init_rnn` does from the same key (the key's third split is the read-out's, see
    :func:`rnnjax.init_model`). Its whole-sequence path (:func:`vanilla_unroll`) is what
    :func:`rnnjax.unroll` and the losses use; its gradient is the hand BPTT of report §2.2 when
    ``method`` resolves to ``"bptt"`` (see the module docstring). Two calls with equal options give
    equal cells, so a program compiled for one is reused for the other.
    """
    get_activation(activation)
    check_choice("method", method, METHODS)
    check_choice("recurrent_init", recurrent_init, RECURRENT_INITS)
    return Cell(_Init(rho, recurrent_init, input_std, jnp.dtype(dtype)), _initial_carry, _Step(activation), identity,
                _Unroll(activation, method))
