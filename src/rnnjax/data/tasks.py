"""Synthetic long-range tasks: the adding problem and the delayed recall of one bit.

The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015):

Each sequence has T steps of two features ``(value, marker)``: values are i.i.d. U(0, 1), and the
marker is 1 at exactly two positions -- one drawn uniformly in the first half [0, T//2), one in the
second half [T//2, T) (the placement of Arjovsky et al. 2016) -- and 0 elsewhere. The target is the
sum of the two marked values. Predicting the constant E[target] = 1 scores

    MSE = Var(u_1 + u_2) = 2 * Var(U(0, 1)) = 2 / 12 = 1/6 ~ 0.167,

the baseline a model must beat; doing so needs the first marked value carried over >= 1 and
up to T - 1 steps.

The delayed recall of one random bit (the copy task of Engelken 2023 with a single bit; see
:func:`delayed_recall`): a bit b = +-1 arrives on channel 0 at step T - 1 - d, channel 1 carries
Gaussian distractor noise at every step, and the target at the last step is b. Exactly one bit
must survive d steps of noise-driven dynamics, so the task measures how far back the gradient
reaches, not memory capacity (a stream copy with delay d would need d bits in memory at once).
Predicting 0 scores MSE E[b^2] = 1, and chance accuracy is 1/2.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax._checks import check_positive_int

ADDING_BASELINE_MSE = 1.0 / 6.0  # Var(u_1 + u_2) for u_i ~ U(0, 1): the constant predictor's MSE


def adding_problem(key: jax.Array, num_sequences: int, length: int, *, dtype=jnp.float32):
    """Draw ``num_sequences`` adding-problem sequences of ``length`` steps.

    Args:
      key: a PRNG key (the data are a pure function of it).
      num_sequences: N >= 1.
      length: T >= 2.
      dtype: float dtype of the arrays.

    Returns:
      ``(xs, ys)``: inputs (N, T, 2) -- ``xs[..., 0]`` the values, ``xs[..., 1]`` the 0/1 markers --
      and targets (N, 1), the sum of the two marked values.
    """
    check_positive_int("num_sequences", num_sequences)
    check_positive_int("length", length)
    if length < 2:
        raise ValueError(f"length must be >= 2 so that two positions can be marked, got {length}")
    return _adding_problem(key, num_sequences, length, dtype)


@partial(jax.jit, static_argnums=(1, 2, 3))
def _adding_problem(key, num_sequences, length, dtype):
    k_val, k_first, k_second = jax.random.split(key, 3)
    half = length // 2
    values = jax.random.uniform(k_val, (num_sequences, length), dtype)  # u_t ~ U(0, 1)
    first = jax.random.randint(k_first, (num_sequences,), 0, half)  # marker 1 in [0, T//2)
    second = jax.random.randint(k_second, (num_sequences,), half, length)  # marker 2 in [T//2, T)
    t = jnp.arange(length)
    markers = ((t == first[:, None]) | (t == second[:, None])).astype(dtype)
    ys = jnp.sum(values * markers, axis=1, keepdims=True)  # y = u_first + u_second
    return jnp.stack([values, markers], axis=-1), ys


def adding_problem_batches(key: jax.Array, num_batches: int, batch_size: int, length: int, *,
                           dtype=jnp.float32):
    """``num_batches`` fresh batches for :func:`rnnjax.train`-style loops: (N, B, T, 2) and (N, B, 1)."""
    check_positive_int("num_batches", num_batches)
    check_positive_int("batch_size", batch_size)
    xs, ys = adding_problem(key, num_batches * batch_size, length, dtype=dtype)
    return xs.reshape(num_batches, batch_size, length, 2), ys.reshape(num_batches, batch_size, 1)


def constant_predictor_mse(ys: jax.Array, constant: float = 1.0) -> jax.Array:
    """MSE of always predicting ``constant`` (default E[y] = 1): ~1/6 on adding-problem targets."""
    return jnp.mean((ys - constant) ** 2)  # mean_n (y_n - c)^2


def running_mean(curve, window: int) -> np.ndarray:
    """Trailing mean over ``window`` steps along the last axis (NumPy): entry s averages steps
    max(0, s - window + 1)..s."""
    check_positive_int("window", window)
    curve = np.asarray(curve, dtype=float)
    c = np.cumsum(curve, axis=-1)
    shifted = np.zeros_like(c)
    shifted[..., window:] = c[..., :-window]  # sum up to step s - window
    count = np.minimum(np.arange(1, curve.shape[-1] + 1), window)
    return (c - shifted) / count  # (sum of the last <= window values) / their count


def first_step_below(curve, threshold: float) -> np.ndarray:
    """Index of the first entry of ``curve`` (..., S) below ``threshold``, or -1 if none (NumPy)."""
    below = np.asarray(curve) < threshold
    return np.where(below.any(-1), np.argmax(below, axis=-1), -1)


RECALL_BASELINE_MSE = 1.0  # E[(b - 0)^2] for b = +-1: the MSE of always predicting 0


def delayed_recall(key: jax.Array, num_sequences: int, length: int, delay, *, noise=1.0, dtype=jnp.float32):
    """Draw ``num_sequences`` delayed-recall sequences: recall at the last step a bit seen ``delay`` steps before.

    Args:
      key: a PRNG key (the data are a pure function of it).
      num_sequences: N >= 1.
      length: T >= 2, the same for every delay, so one compiled program serves all delays.
      delay: d with 1 <= d <= T - 1: the bit arrives at step T - 1 - d (0-based); may be traced
        (``jax.vmap`` over delays), then it is not checked.
      noise: standard deviation of the distractor input on channel 1 (0 for none).
      dtype: float dtype of the arrays.

    Returns:
      ``(xs, ys)``: inputs (N, T, 2) -- ``xs[..., 0]`` is b at step T - 1 - d and 0 elsewhere,
      ``xs[..., 1]`` the noise -- and targets (N, 1), the bit b = +-1 (a target for ``mse_last``).
    """
    check_positive_int("num_sequences", num_sequences)
    check_positive_int("length", length)
    if length < 2:
        raise ValueError(f"length must be >= 2, got {length}")
    if isinstance(delay, (int, np.integer)) and not isinstance(delay, bool) and not 1 <= delay <= length - 1:
        raise ValueError(f"delay must satisfy 1 <= delay <= length - 1 = {length - 1}, got {delay}")
    k_bit, k_noise = jax.random.split(key)
    bits = jnp.where(jax.random.bernoulli(k_bit, 0.5, (num_sequences,)), 1.0, -1.0).astype(dtype)  # b = +-1
    t = jnp.arange(length)
    marker = (t == length - 1 - jnp.asarray(delay)).astype(dtype)  # 1 at step T - 1 - d
    distractor = noise * jax.random.normal(k_noise, (num_sequences, length), dtype)
    return jnp.stack([bits[:, None] * marker, distractor], axis=-1), bits[:, None]


def recall_accuracy(predictions: jax.Array, bits: jax.Array) -> jax.Array:
    """Fraction of sequences whose last-step prediction has the bit's sign: mean(sign(y_T) == b)."""
    return jnp.mean(jnp.sign(predictions) == jnp.sign(bits))
