"""A plain-NumPy vanilla RNN with a hand-written BPTT, min-char-rnn style (Karpathy 2015).

The independent reference that the benchmarks time ``rnnjax`` against: the same math as
:mod:`rnnjax.bptt` (report §1.2 and §2.2, row convention, batch-mean loss and gradients), written
the way a NumPy user would -- a Python loop over time forward, a Python loop backward that carries
delta and accumulates dL/dW_hh step by step (contracted over the batch), and the products that do
not depend on the recursion (x_t W_xh, o_t, e_t, the other weight gradients) done for all t at once.
No JAX anywhere.

    a_t = x_t W_xh + h_{t-1} W_hh + b_h,   h_t = phi(a_t),   o_t = h_t W_ho + b_o        (§1.2)
    delta_t = (dL/do_t W_ho^T + delta_{t+1} W_hh^T) ⊙ phi'(a_t)                            (§2.2)
    dL/dW_xh = sum_t x_t^T delta_t,  dL/dW_hh = sum_t h_{t-1}^T delta_t,  dL/db_h = sum_t delta_t
    dL/dW_ho = sum_t h_t^T dL/do_t,  dL/db_o = sum_t dL/do_t                                (§2.2)

``numpy_loss_and_grad(params, xs, targets, loss="xent", activation="relu")``: ``params`` a dict (or
an :class:`rnnjax.RNNParams`) of arrays; ``xs`` (T, D) or (B, T, D); targets as
:func:`rnnjax.loss_and_grad` takes them. Returns ``(loss, grads)`` (a dict), the batch means.
``numpy_loss_and_grad_lean`` is the same math tuned for large batches (per-step work on cache-sized
slabs, many-to-one aware); it is ~1.8x faster on Experiment 1's shape and ~2x slower on a single
sequence, so a benchmark should quote the faster of the two. ``numpy_train`` runs SGD with optional
global-norm clipping and records what :func:`rnnjax.train` does.
"""

from __future__ import annotations

import numpy as np

# phi(a), and phi'(a) written through h = phi(a) (min-char-rnn's 1 - h * h for tanh)
ACTIVATIONS = {
    "tanh": (np.tanh, lambda h: 1.0 - h * h),
    "sigmoid": (lambda a: 1.0 / (1.0 + np.exp(-a)), lambda h: h * (1.0 - h)),
    "relu": (lambda a: np.maximum(a, 0.0), lambda h: (h > 0).astype(h.dtype)),
    "linear": (lambda a: a, np.ones_like),
}
LOSSES = ("mse_last", "mse", "xent")


def _as_dict(params) -> dict:
    if hasattr(params, "_asdict"):
        params = params._asdict()
    return {k: np.asarray(v) for k, v in params.items()}


def _loss_and_output_grad(loss: str, o: np.ndarray, targets: np.ndarray):
    """Summed loss over the batch and dL/do (T, B, O), from time-major outputs ``o`` (T, B, O)."""
    if loss == "mse_last":
        diff = o[-1] - targets  # o_T - y
        dL_do = np.zeros_like(o)
        dL_do[-1] = diff  # dL/do_T = o_T - y, zero before T
        return 0.5 * np.sum(diff * diff), dL_do
    if loss == "mse":
        diff = o - np.swapaxes(targets, 0, 1)  # o_t - y_t
        return 0.5 * np.sum(diff * diff), diff
    if loss == "xent":
        y = np.swapaxes(targets, 0, 1)[..., None]  # (T, B, 1) class indices
        z = o - o.max(-1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(-1, keepdims=True)  # softmax(o_t)
        value = -np.sum(np.log(np.take_along_axis(p, y, axis=-1)))  # sum_t -log softmax(o_t)[y_t]
        np.put_along_axis(p, y, np.take_along_axis(p, y, axis=-1) - 1.0, axis=-1)  # softmax(o_t) - e_{y_t}
        return value, p
    raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(LOSSES)}")


def _prepare(params, xs, targets, h0, activation):
    """Shared set-up of both NumPy BPTTs: params as a dict, (phi, phi' of h), time-major inputs (T, B, D),
    targets and h0 with a batch axis (one sequence becomes a batch of one)."""
    p = _as_dict(params)
    phi, dphi_h = ACTIVATIONS[activation]
    xs, targets = np.asarray(xs), np.asarray(targets)
    if xs.ndim == 2:
        xs, targets = xs[None], targets[None]
        h0 = None if h0 is None else np.asarray(h0)[None]
    xs_tm = np.ascontiguousarray(np.swapaxes(xs, 0, 1), dtype=p["W_hh"].dtype)  # (T, B, D), time-major
    return p, phi, dphi_h, xs_tm, targets, h0


def numpy_loss_and_grad(params, xs, targets, *, loss: str, activation: str = "tanh", h0=None):
    """Batch-mean loss and gradients of the vanilla RNN by a hand-written NumPy BPTT.

    ``xs`` (T, D) or (B, T, D); ``targets`` (O,)/(T, O)/(T,) for mse_last/mse/xent, with a leading B
    for a batch; ``h0`` (H,) or (B, H) or None (zeros). Returns ``(loss, grads)``, ``grads`` a dict
    keyed like :class:`rnnjax.RNNParams`.
    """
    p, phi, dphi_h, xs_tm, targets, h0 = _prepare(params, xs, targets, h0, activation)
    T, B, _ = xs_tm.shape
    H, dtype = p["W_hh"].shape[0], p["W_hh"].dtype

    # forward (§1.2): hs[t] is h_t, hs[0] = h_0
    xw = np.einsum("tbd,dh->tbh", xs_tm, p["W_xh"]) + p["b_h"]  # x_t W_xh + b_h for every t
    hs = np.empty((T + 1, B, H), dtype)
    hs[0] = 0.0 if h0 is None else np.broadcast_to(h0, (B, H))
    for t in range(T):
        hs[t + 1] = phi(xw[t] + hs[t] @ p["W_hh"])  # h_t = phi(x_t W_xh + h_{t-1} W_hh + b_h)
    o = np.einsum("tbh,ho->tbo", hs[1:], p["W_ho"]) + p["b_o"]  # o_t = h_t W_ho + b_o
    value, dL_do = _loss_and_output_grad(loss, o, targets)
    dL_do /= B  # batch mean
    e = np.einsum("tbo,ho->tbh", dL_do, p["W_ho"])  # e_t = dL/do_t W_ho^T
    dphi = dphi_h(hs[1:])  # phi'(a_t)

    # backward (§2.2): min-char-rnn's reverse loop, dL/dW_hh accumulated over the batch at each step
    dW_hh = np.zeros_like(p["W_hh"])
    deltas = np.empty((T, B, H), dtype)
    delta = np.zeros((B, H), dtype)
    for t in reversed(range(T)):
        delta = (e[t] + delta @ p["W_hh"].T) * dphi[t]  # delta_t = (e_t + delta_{t+1} W_hh^T) ⊙ phi'(a_t)
        dW_hh += hs[t].T @ delta  # dL/dW_hh += h_{t-1}^T delta_t
        deltas[t] = delta
    grads = {
        "W_xh": np.einsum("tbd,tbh->dh", xs_tm, deltas),  # sum_t x_t^T delta_t
        "W_hh": dW_hh,
        "b_h": deltas.sum((0, 1)),  # sum_t delta_t
        "W_ho": np.einsum("tbh,tbo->ho", hs[1:], dL_do),  # sum_t h_t^T dL/do_t
        "b_o": dL_do.sum((0, 1)),  # sum_t dL/do_t
    }
    return float(value) / B, grads


def numpy_loss_and_grad_lean(params, xs, targets, *, loss: str, activation: str = "tanh", h0=None):
    """The same gradients, written for speed on large batches: everything per time step on (B, H) slabs
    that stay in cache, phi'(a_t) and the bias sums inside the loops, the output term e_t only at the
    steps that carry a loss (the last one alone for ``mse_last``, as a many-to-one BPTT is written), and
    einsum where NumPy's matmul/sum are slow on thin operands (K = 1 products, column sums)."""
    p, phi, dphi_h, xs_tm, targets, h0 = _prepare(params, xs, targets, h0, activation)
    T, B, _ = xs_tm.shape
    H, dtype = p["W_hh"].shape[0], p["W_hh"].dtype
    xw = np.einsum("tbd,dh->tbh", xs_tm, p["W_xh"])  # x_t W_xh for every t
    hs = np.empty((T + 1, B, H), dtype)
    hs[0] = 0.0 if h0 is None else np.broadcast_to(h0, (B, H))
    for t in range(T):
        hs[t + 1] = phi(xw[t] + hs[t] @ p["W_hh"] + p["b_h"])  # h_t = phi(x_t W_xh + h_{t-1} W_hh + b_h)
    o = np.einsum("tbh,ho->tbo", hs[1:], p["W_ho"]) + p["b_o"]  # o_t = h_t W_ho + b_o
    value, dL_do = _loss_and_output_grad(loss, o, targets)
    dL_do /= B
    loss_steps = {T - 1} if loss == "mse_last" else set(range(T))  # steps whose dL/do_t is not zero
    g = {k: np.zeros_like(v) for k, v in p.items()}
    delta = np.zeros((B, H), dtype)
    for t in reversed(range(T)):
        dh = delta @ p["W_hh"].T  # delta_{t+1} W_hh^T
        if t in loss_steps:
            dh += np.einsum("bo,ho->bh", dL_do[t], p["W_ho"])  # + e_t = dL/do_t W_ho^T
            g["W_ho"] += hs[t + 1].T @ dL_do[t]  # dL/dW_ho += h_t^T dL/do_t
            g["b_o"] += np.einsum("bo->o", dL_do[t])
        delta = dh * dphi_h(hs[t + 1])  # delta_t = dL/dh_t ⊙ phi'(a_t)
        g["W_hh"] += hs[t].T @ delta  # dL/dW_hh += h_{t-1}^T delta_t
        g["W_xh"] += xs_tm[t].T @ delta  # dL/dW_xh += x_t^T delta_t
        g["b_h"] += np.einsum("bh->h", delta)  # dL/db_h += delta_t
    return float(value) / B, g


def global_norm(grads: dict) -> float:
    """sqrt(sum of squares over every gradient array)."""
    return float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grads.values())))


def numpy_train(params, xs, targets, *, loss: str, num_steps: int, learning_rate: float, clip_norm=None,
                activation: str = "tanh", grad=None):
    """SGD with optional global-norm clipping, recording what :func:`rnnjax.train` records.

    ``xs`` (N, T, D) -- one sequence per step -- or (N, B, T, D); step s uses item s mod N. ``grad`` is
    :func:`numpy_loss_and_grad` (default) or :func:`numpy_loss_and_grad_lean`. Returns ``(params,
    history)``, history a dict of per-step lists: loss, grad_norm, grad_whh_fro, grad_whh_spec.
    """
    grad = numpy_loss_and_grad if grad is None else grad
    p = {k: v.copy() for k, v in _as_dict(params).items()}
    history = {"loss": [], "grad_norm": [], "grad_whh_fro": [], "grad_whh_spec": []}
    for s in range(num_steps):
        i = s % len(xs)
        value, g = grad(p, xs[i], targets[i], loss=loss, activation=activation)
        norm = global_norm(g)
        history["loss"].append(value)
        history["grad_norm"].append(norm)
        history["grad_whh_fro"].append(float(np.linalg.norm(g["W_hh"])))
        history["grad_whh_spec"].append(float(np.linalg.norm(g["W_hh"], 2)))  # largest singular value
        scale = 1.0 if clip_norm is None else clip_norm / max(norm, clip_norm)  # g tau / max(||g||, tau)
        for k in p:
            p[k] -= (learning_rate * scale) * g[k]
    return p, history
