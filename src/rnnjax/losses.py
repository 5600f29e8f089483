"""Per-sequence losses on the RNN's linear outputs, with their gradients dL/do_t.

Every function takes ``outputs (..., T, O)`` and targets batched alike, reduces over time and the
output axis, and returns one value per sequence (shape ``...``); ``*_grad`` returns dL/do with
the shape of ``outputs``. These gradients are what :func:`rnnjax.bptt.bptt` consumes.

* ``mse_last``: L = 0.5 ||o_T - y||^2, targets (..., O)             (report §3, many-to-one)
* ``mse``:      L = sum_t 0.5 ||o_t - y_t||^2, targets (..., T, O)   (report §2.1, many-to-many)
* ``xent``:     L = sum_t -log softmax(o_t)[y_t], targets (..., T) int (report §5, decided in docs/report_restated.md)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax._checks import check_array, check_choice, check_class_labels


class Loss(NamedTuple):
    """A per-sequence loss: ``value(outputs, targets)`` and ``grad(outputs, targets)`` = dL/do."""

    value: Callable
    grad: Callable
    target_shape: Callable  # (outputs shape) -> expected targets shape, for validation
    integer_targets: bool
    value_and_grad: Callable | None = None  # both at once, sharing the work; None: value and grad apart

    def both(self, o, y):
        """``(value(o, y), grad(o, y))``, through ``value_and_grad`` when the loss has one."""
        return (self.value(o, y), self.grad(o, y)) if self.value_and_grad is None else self.value_and_grad(o, y)


def _mse_last(o, y):
    return 0.5 * jnp.sum((o[..., -1, :] - y) ** 2, axis=-1)  # L = 0.5 ||o_T - y||^2 (§3)


def _mse_last_grad(o, y):
    return jnp.zeros_like(o).at[..., -1, :].set(o[..., -1, :] - y)  # dL/do_T = o_T - y, 0 for t < T


def _mse(o, y):
    return 0.5 * jnp.sum((o - y) ** 2, axis=(-2, -1))  # L = sum_t 0.5 ||o_t - y_t||^2 (§2.1)


def _mse_grad(o, y):
    return o - y  # dL/do_t = o_t - y_t


def _xent(o, y):
    e_y = jax.nn.one_hot(y, o.shape[-1], dtype=o.dtype)
    return -jnp.sum(e_y * jax.nn.log_softmax(o, axis=-1), axis=(-2, -1))  # L = sum_t -log softmax(o_t)[y_t]


def _xent_grad(o, y):
    return jax.nn.softmax(o, axis=-1) - jax.nn.one_hot(y, o.shape[-1], dtype=o.dtype)  # softmax(o_t) - e_{y_t}


def _xent_value_and_grad(o, y):
    log_p = jax.nn.log_softmax(o, axis=-1)  # log softmax(o_t)
    e_y = jax.nn.one_hot(y, o.shape[-1], dtype=o.dtype)
    return -jnp.sum(e_y * log_p, axis=(-2, -1)), jnp.exp(log_p) - e_y  # the value of _xent; softmax - e_y


def _with_grad(value, grad):
    """``value`` whose derivative w.r.t. the outputs is the closed form ``grad`` (dL/do), a ``jax.custom_jvp``:
    ``jax.grad`` of any loss then starts its backward pass from the same dL/do_t as report §2.2, and
    forward mode works too. The targets are data: no derivative w.r.t. them."""

    @jax.custom_jvp
    def f(o, y):
        return value(o, y)

    @f.defjvp
    def _(primals, tangents):
        o, y = primals
        return value(o, y), jnp.sum(grad(o, y) * tangents[0], axis=(-2, -1))  # dL = sum_t <dL/do_t, do_t>

    return f


LOSSES: dict[str, Loss] = {
    "mse_last": Loss(_with_grad(_mse_last, _mse_last_grad), _mse_last_grad, lambda s: s[:-2] + s[-1:], False),
    "mse": Loss(_with_grad(_mse, _mse_grad), _mse_grad, lambda s: s, False),
    "xent": Loss(_with_grad(_xent, _xent_grad), _xent_grad, lambda s: s[:-1], True, _xent_value_and_grad),
}


def get_loss(name: str) -> Loss:
    """Return the :class:`Loss` called ``name`` (one of :data:`LOSSES`)."""
    check_choice("loss", name, LOSSES)
    return LOSSES[name]


def check_targets(loss: str, outputs_shape: tuple, targets: jax.Array) -> None:
    """Raise ``ValueError`` unless ``targets`` has the shape and dtype that ``loss`` needs."""
    check_array("targets", targets)
    spec = get_loss(loss)
    want = tuple(spec.target_shape(tuple(outputs_shape)))
    if tuple(targets.shape) != want:
        raise ValueError(f"targets for loss {loss!r} must have shape {want} (outputs are "
                         f"{tuple(outputs_shape)}), got {tuple(targets.shape)}")
    is_int = jnp.issubdtype(targets.dtype, jnp.integer)
    if spec.integer_targets and not is_int:
        raise ValueError(f"targets for loss {loss!r} must be integer class indices, got dtype {targets.dtype}")
    if spec.integer_targets:
        check_class_labels(f"targets for loss {loss!r}", targets, outputs_shape[-1])
    if not spec.integer_targets and not jnp.issubdtype(targets.dtype, jnp.floating):
        raise ValueError(f"targets for loss {loss!r} must be floating point, got dtype {targets.dtype}")
