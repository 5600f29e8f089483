"""Back-propagation through time, written out by hand (report §2.2), and ``loss_and_grad``.

The whole backward pass of the vanilla RNN, in the report's row convention::

    e_t       = (dL/do_t) W_ho^T                      output loss at t, pulled back to h_t
    dL/dh_t   = e_t + delta_{t+1} W_hh^T              plus what flows back from the future
    delta_t   = dL/dh_t ⊙ phi'(a_t)                   the report's hidden error
    dL/dW_xh  = sum_t x_t^T delta_t,   dL/dW_hh = sum_t h_{t-1}^T delta_t,   dL/db_h = sum_t delta_t
    dL/dW_ho  = sum_t h_t^T dL/do_t,   dL/db_o  = sum_t dL/do_t

As in min-char-rnn, one reverse ``lax.scan`` carries delta_{t+1} and the running sums of the weight
gradients; for a batch each step adds h_{t-1}^T delta_t already summed over the batch (a (H, B) x
(B, H) matmul), so no per-example weight gradient is ever formed. Terms that do not depend on the
recursion (o_t; e_t and dL/dW_ho for one sequence) are done for all t at once. phi'(a_t) is read off
the stored h_t (:attr:`rnnjax.Activation.dphi_h`), so the forward pass keeps only the states.
Arrays are feature-major, ``(T, F, *batch)`` (see :mod:`rnnjax.forward`), which for a batch puts
the batch on the fast axis; for one sequence it is the report's (T, F) layout.

Measured on Experiment 1's shape (B = 6,000, T = 20, H = 16) this is ~4x faster than ``jax.grad``
of the vmapped forward and ~0.5x a NumPy min-char-rnn; on Experiment 2's (T = 50, H = 50, one
sequence) it runs as fast as ``jax.grad`` (``benchmarks/bench_core.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax._checks import check_choice
from rnnjax.activations import get_activation
from rnnjax.cells import RNNParams
from rnnjax.forward import (
    check_inputs,
    from_feature_major,
    hidden_scan,
    initial_state,
    rnn_forward,
    seq_times,
    times_t,
    to_feature_major,
)
from rnnjax.losses import check_targets, get_loss

METHODS = ("auto", "bptt", "autograd")


def resolve_method(method: str, like=None) -> str:
    """The gradient method that ``method`` names: ``"auto"`` is ``"bptt"`` on CPU and ``"autograd"`` on an
    accelerator; ``"bptt"`` and ``"autograd"`` are themselves.

    The rule, measured (``benchmarks/bench_core.py``): on CPU the hand BPTT takes 0.24x the time of
    ``jax.grad`` at Experiment 1's shape (B = 6,366, T = 20, H = 16) and the same time at Experiment 2's
    (T = 50, H = 50, one sequence); on a GPU (one H200, jax 0.11.2 with CUDA) it took 3.6x the time of
    ``jax.grad`` at Experiment 1's shape (2.6 ms against 0.7 ms): its blocked ``lax.map`` and in-scan
    accumulation, right for a CPU's caches, serialise work a GPU runs in parallel. The platform is that
    of ``like`` when it is an array already on a device, else JAX's default backend (inside ``jit``
    or ``vmap``, where arrays are traced).
    """
    check_choice("method", method, METHODS)
    if method != "auto":
        return method
    platform = None
    if isinstance(like, jax.Array) and not isinstance(like, jax.core.Tracer):
        platform = next(iter(like.devices())).platform
    return "bptt" if (platform or jax.default_backend()) == "cpu" else "autograd"


def _sum_outer(u: jax.Array, v: jax.Array) -> jax.Array:
    """u^T v summed over the batch: ``(F, *batch), (G, *batch) -> (F, G)`` (an outer product for one sequence)."""
    batch = tuple(range(1, u.ndim))
    return jnp.tensordot(u, v, axes=(batch, batch))


def _sum_batch(v: jax.Array) -> jax.Array:
    return v.sum(tuple(range(1, v.ndim)))  # (F, *batch) -> (F,)


def _column(b: jax.Array, like: jax.Array) -> jax.Array:
    return b.reshape(b.shape + (1,) * (like.ndim - 2))  # a bias (F,) broadcast over (T, F, *batch)


def _backward(params: RNNParams, xs, hs, h_init, dL_do, dphi_h) -> RNNParams:
    """The §2.2 gradients, summed over time and batch, from feature-major ``xs (T, D, ...)``,
    ``hs (T, H, ...)``, ``h_init (H, ...)`` and ``dL_do (T, O, ...)``.

    For one sequence the reverse scan carries delta_t alone and the weight gradients are matmuls over
    t after it, as is e_t (none of them depends on the recursion). For a batch the three sums that
    need delta_t share one product inside the step, contracted over the batch: a_t = z_t [W_xh; b_h;
    W_hh] with z_t = [x_t, 1, h_{t-1}], so dL/d[W_xh; b_h; W_hh] = sum_t z_t^T delta_t (a (T, H, B)
    array of deltas would cost more memory traffic than the step saves).
    """
    D = xs.shape[1]
    batched = h_init.ndim > 1
    h_prev = jnp.concatenate([h_init[None], hs[:-1]])  # h_{t-1} for t = 1..T
    z = jnp.concatenate([xs, jnp.ones_like(xs[:, :1]), h_prev], axis=1)  # z_t = [x_t, 1, h_{t-1}], (T, D+1+H, ...)
    W_hh, W_ho = params.W_hh, params.W_ho  # delta W^T contracts W's minor axis: no transpose (times_t)

    if not batched:  # one sequence: the scan carries delta alone; the sums are matmuls over t afterwards
        e = dL_do @ W_ho.T  # e_t = (dL/do_t) W_ho^T for all t (§2.2)

        def step_one(delta_next, inputs):
            e_t, h_t = inputs
            delta = (e_t + times_t(delta_next, W_hh)) * dphi_h(h_t)  # delta_t = (e_t + delta_{t+1} W_hh^T) ⊙ phi'(a_t)
            return delta, delta

        _, deltas = lax.scan(step_one, jnp.zeros_like(h_init), (e, hs), reverse=True)  # (T, H)
        # one product for the three sums, not x^T delta apart: vmapped over runs that share the data, that
        # would be one matmul over all runs, whose round-off then depends on how many runs a device holds
        g = z.T @ deltas  # dL/d[W_xh; b_h; W_hh] = sum_t [x_t, 1, h_{t-1}]^T delta_t (§2.2)
        return RNNParams(W_xh=g[:D], W_hh=g[D + 1:], b_h=g[D],
                         W_ho=hs.T @ dL_do,  # dL/dW_ho = sum_t h_t^T dL/do_t (§2.2)
                         b_o=dL_do.sum(0))  # dL/db_o = sum_t dL/do_t

    def step(carry, inputs):
        delta_next, g, g_ho = carry  # delta_{t+1}; sums of z_s^T delta_s and h_s^T dL/do_s over s = t+1..T
        out_t, h_t, z_t = inputs  # dL/do_t, h_t, z_t
        e_t = times_t(out_t, W_ho)  # e_t = (dL/do_t) W_ho^T (§2.2)
        dL_dh = e_t + times_t(delta_next, W_hh)  # dL/dh_t = e_t + delta_{t+1} W_hh^T (§2.2)
        delta = dL_dh * dphi_h(h_t)  # delta_t = dL/dh_t ⊙ phi'(a_t) (§2.2)
        g = g + _sum_outer(z_t, delta)  # dL/d[W_xh; b_h; W_hh] += [x_t, 1, h_{t-1}]^T delta_t (§2.2)
        g_ho = g_ho + _sum_outer(h_t, out_t)  # dL/dW_ho += h_t^T dL/do_t (§2.2)
        return (delta, g, g_ho), None

    g0 = jnp.zeros((z.shape[1], hs.shape[1]), hs.dtype)
    (_, g, g_ho), _ = lax.scan(step, (jnp.zeros_like(h_init), g0, jnp.zeros_like(W_ho)), (dL_do, hs, z),
                               reverse=True)
    return RNNParams(
        W_xh=g[:D],  # dL/dW_xh = sum_t x_t^T delta_t (§2.2)
        W_hh=g[D + 1:],  # dL/dW_hh = sum_t h_{t-1}^T delta_t (§2.2)
        b_h=g[D],  # dL/db_h = sum_t delta_t
        W_ho=g_ho,  # dL/dW_ho = sum_t h_t^T dL/do_t (§2.2)
        b_o=_sum_batch(dL_do.sum(0)),  # dL/db_o = sum_t dL/do_t
    )


def _bptt_fm(params: RNNParams, xs, h_init, activation: str, output_grad):
    """Forward, then ``output_grad(outputs) -> (aux, dL/do)``, then :func:`_backward`; feature-major.

    Returns ``(grads, aux, h_T)``.
    """
    act = get_activation(activation)
    hs = hidden_scan(params, xs, h_init, act.phi)  # h_t (§1.2), (T, H, *batch)
    outputs = seq_times(hs, params.W_ho) + _column(params.b_o, hs)  # o_t = h_t W_ho + b_o (§1.2)
    aux, dL_do = output_grad(outputs)
    return _backward(params, xs, hs, h_init, dL_do, act.dphi_h), aux, hs[-1]


BLOCK_BYTES = 4 * 2**20  # what one block of a batch keeps live: a few MiB, cache-sized


def block_size(T: int, D: int, H: int, O: int, B: int, itemsize: int) -> int:
    """Sequences per block when a batch of B is cut into equal blocks of at most :data:`BLOCK_BYTES`.

    A block keeps z_t (D + 1 + H), h_t (H), e_t (H) and dL/do_t (O) live for every t. Cutting Experiment
    1's batch (B = 6,000, T = 20, H = 16) into 6 blocks of 1,000 cut its gradient's CPU time 1.5x
    (blocks of 500 to 1,500 were all within 10% of that): the per-step passes over (H, B) arrays are
    bound by memory traffic, not arithmetic, and a block's arrays stay in cache.
    """
    per_sequence = T * (D + 1 + 3 * H + O) * itemsize
    n_blocks = max(1, -(-B * per_sequence // BLOCK_BYTES))  # ceil
    return -(-B // n_blocks)  # equal blocks, the least padding


def _one_block(params, xs_fm, targets, h_init, weights, n, spec, activation):
    """Loss and gradients of one block, as sums over its sequences divided by the whole batch's n;
    ``weights`` (b,) is 1 for real sequences and 0 for padding (None: no padding)."""

    def output_grad(outputs_fm):
        outputs = from_feature_major(outputs_fm)  # (*batch, T, O), the losses' layout
        values, dL_do = spec.both(outputs, targets)  # per-sequence L and dL/do_t (rnnjax.losses)
        if weights is not None:  # padding sequences add nothing to the loss or the gradients
            values, dL_do = values * weights, dL_do * weights[:, None, None]
        return jnp.sum(values) / n, to_feature_major(dL_do) / n  # shares of the batch means

    grads, value, h_last = _bptt_fm(params, xs_fm, h_init, activation, output_grad)
    return value, grads, h_last


def bptt_loss_and_grad_fm(params: RNNParams, xs_fm, targets, h_init, *, loss: str, activation: str,
                          block: int | None = None):
    """Batch-mean loss, gradients and h_T by the hand BPTT, on already feature-major inputs.

    ``xs_fm (T, D, *batch)`` and ``h_init (H, *batch)`` (see :func:`rnnjax.forward.to_feature_major`);
    ``targets`` in the loss's own layout (``(*batch, O)``, ``(*batch, T, O)`` or ``(*batch, T)``).
    No input checks: :func:`loss_and_grad` and :func:`rnnjax.train` do them. A batch (one axis) larger
    than ``block`` sequences (default :func:`block_size`) is cut into blocks -- the last one padded and
    masked -- that ``lax.map`` runs one after the other, adding up their sums. Returns
    ``(loss, grads, h_T (H, *batch))``.
    """
    spec = get_loss(loss)
    n = 1
    for size in xs_fm.shape[2:]:
        n *= size  # batch size; the loss and gradients are means over it
    if xs_fm.ndim != 3:
        return _one_block(params, xs_fm, targets, h_init, None, n, spec, activation)
    T, D, B = xs_fm.shape
    H, O = params.W_ho.shape
    b = block or block_size(T, D, H, O, B, xs_fm.dtype.itemsize)
    if b >= B:
        return _one_block(params, xs_fm, targets, h_init, None, n, spec, activation)
    nb = -(-B // b)
    pad = nb * b - B
    padded = lambda a, axis: jnp.pad(a, [(0, pad if i == axis else 0) for i in range(a.ndim)])
    blocks = (
        jnp.moveaxis(padded(xs_fm, 2).reshape(T, D, nb, b), 2, 0),  # (nb, T, D, b)
        padded(targets, 0).reshape((nb, b) + targets.shape[1:]),  # (nb, b, ...)
        jnp.moveaxis(padded(h_init, 1).reshape(H, nb, b), 1, 0),  # (nb, H, b)
        (jnp.arange(nb * b) < B).astype(xs_fm.dtype).reshape(nb, b) if pad else None,  # 1: a real sequence
    )
    one = lambda blk: _one_block(params, blk[0], blk[1], blk[2], blk[3], n, spec, activation)
    values, grads, h_last = lax.map(one, blocks)
    h_last = jnp.moveaxis(h_last, 0, 1).reshape(H, nb * b)[:, :B]
    return values.sum(), jax.tree.map(lambda g: g.sum(0), grads), h_last  # sums over blocks of batch sums


def bptt(params: RNNParams, xs: jax.Array, dL_doutputs: jax.Array, h0=None, *,
         activation: str = "tanh") -> RNNParams:
    """Hand-written BPTT: the gradient of a loss given its gradient w.r.t. every output.

    Args:
      params: :class:`RNNParams`.
      xs: inputs (T, D), or a batch (B, T, D).
      dL_doutputs: dL/do_t for every step, (T, O) or (B, T, O); any per-step loss plugs in.
      h0: initial state (H,) or (B, H); zeros when None.
      activation: the hidden non-linearity of the forward pass.

    Returns:
      :class:`RNNParams` of gradients; for a batch, the batch mean of the per-sequence gradients.
    """
    batched = xs.ndim == 3
    check_inputs(params, xs, h0, batched=batched)
    get_activation(activation)
    if dL_doutputs.shape != xs.shape[:-1] + (params.W_ho.shape[1],):
        raise ValueError(f"dL_doutputs must have shape {xs.shape[:-1] + (params.W_ho.shape[1],)}, "
                         f"got {tuple(dL_doutputs.shape)}")
    h_init = jnp.moveaxis(initial_state(params, xs.shape[:-2], h0), -1, 0)
    n = xs.shape[0] if batched else 1
    dL_do = to_feature_major(dL_doutputs) / n  # the batch mean of the gradients
    grads, _, _ = _bptt_fm(params, to_feature_major(xs), h_init, activation, lambda outputs: (None, dL_do))
    return grads


def loss_and_grad_with_state(params: RNNParams, xs, targets, *, loss: str, activation: str = "tanh",
                             h0=None, method: str = "auto"):
    """As :func:`loss_and_grad`, also returning the final hidden state h_T ((H,) or (B, H))."""
    method = resolve_method(method, xs)
    spec = get_loss(loss)
    get_activation(activation)
    batched = xs.ndim == 3
    check_inputs(params, xs, h0, batched=batched)
    check_targets(loss, xs.shape[:-1] + (params.W_ho.shape[1],), targets)

    if method == "bptt":
        h_init = jnp.moveaxis(initial_state(params, xs.shape[:-2], h0), -1, 0)
        value, grads, h_last = bptt_loss_and_grad_fm(params, to_feature_major(xs), targets, h_init,
                                                     loss=loss, activation=activation)
        return value, grads, jnp.moveaxis(h_last, 0, -1)

    def one(p, x, y, h):
        hs, outputs = rnn_forward(p, x, h, activation=activation)
        return spec.value(outputs, y), hs[-1]

    def mean_loss(p):
        if not batched:
            return one(p, xs, targets, h0)
        h_axis = None if h0 is None or h0.ndim == 1 else 0
        values, h_last = jax.vmap(one, in_axes=(None, 0, 0, h_axis))(p, xs, targets, h0)
        return jnp.mean(values), h_last

    (value, h_last), grads = jax.value_and_grad(mean_loss, has_aux=True)(params)
    return value, grads, h_last


def loss_and_grad(params: RNNParams, xs: jax.Array, targets: jax.Array, *, loss: str,
                  activation: str = "tanh", h0=None, method: str = "auto"):
    """Loss and its gradient w.r.t. every parameter, for one sequence or a batch.

    Args:
      params: :class:`RNNParams`.
      xs: inputs (T, D), or a batch (B, T, D).
      targets: ``mse_last`` (O,), ``mse`` (T, O), ``xent`` (T,) integers -- with a leading B for a batch.
      loss: ``"mse_last"``, ``"mse"`` or ``"xent"`` (see :mod:`rnnjax.losses`).
      activation: ``"tanh"``, ``"sigmoid"``, ``"relu"`` or ``"linear"``.
      h0: initial state (H,) or (B, H); zeros when None.
      method: ``"bptt"`` (the hand backward pass of report §2.2), ``"autograd"`` (``jax.grad``) or
        ``"auto"`` (the default: the hand BPTT on CPU, ``jax.grad`` on accelerators, see
        :func:`resolve_method`).

    Returns:
      ``(loss_value, grads)``; for a batch, the batch-mean loss and batch-mean gradients.
    """
    value, grads, _ = loss_and_grad_with_state(params, xs, targets, loss=loss, activation=activation,
                                               h0=h0, method=method)
    return value, grads
