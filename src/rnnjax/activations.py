"""Hidden-state non-linearities phi_h of report §1.2, with their derivatives.

Each entry maps a name to ``Activation(phi, dphi, gamma)``:

* ``phi(a)``    -- the non-linearity applied to the pre-activation ``a_t``;
* ``dphi(a)``   -- its elementwise derivative phi'(a_t), used by the hand BPTT (report §2.2);
* ``gamma``     -- sup_a |phi'(a)|, the constant of the report's bound (report §4.1);
* ``dphi_h(h)`` -- the same phi'(a_t) written through the output h_t = phi(a_t) (1 - h^2 for tanh,
  h (1 - h) for the sigmoid, 1[h > 0] for ReLU), so the hand BPTT needs only the stored h_t
  (min-char-rnn's ``(1 - hs[t] * hs[t])``), not a second (T, H) array of pre-activations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax._checks import check_choice


class Activation(NamedTuple):
    """A hidden non-linearity: phi, its derivative phi', gamma = sup |phi'|, and phi' as a function of h."""

    phi: Callable[[jax.Array], jax.Array]
    dphi: Callable[[jax.Array], jax.Array]
    gamma: float
    dphi_h: Callable[[jax.Array], jax.Array] | None = None  # h = phi(a) -> phi'(a)


def _dtanh(a):
    return 1.0 - jnp.tanh(a) ** 2  # d/da tanh(a) = 1 - tanh(a)^2


def _dsigmoid(a):
    s = jax.nn.sigmoid(a)
    return s * (1.0 - s)  # d/da sigma(a) = sigma(a) (1 - sigma(a))


def _drelu(a):
    return (a > 0).astype(a.dtype)  # d/da max(a, 0) = 1[a > 0] (0 at the kink, as jax.nn.relu)


def _dtanh_h(h):
    return 1.0 - h * h  # tanh'(a) = 1 - tanh(a)^2 = 1 - h^2


def _dsigmoid_h(h):
    return h * (1.0 - h)  # sigma'(a) = sigma(a) (1 - sigma(a)) = h (1 - h)


def _drelu_h(h):
    return (h > 0).astype(h.dtype)  # 1[a > 0] = 1[h > 0], since h = max(a, 0) > 0 exactly when a > 0


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(jnp.tanh, _dtanh, 1.0, _dtanh_h),
    "sigmoid": Activation(jax.nn.sigmoid, _dsigmoid, 0.25, _dsigmoid_h),
    "relu": Activation(jax.nn.relu, _drelu, 1.0, _drelu_h),
    "linear": Activation(lambda a: a, jnp.ones_like, 1.0, jnp.ones_like),
}


def get_activation(name: str) -> Activation:
    """Return the :class:`Activation` called ``name`` (one of :data:`ACTIVATIONS`)."""
    check_choice("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]
