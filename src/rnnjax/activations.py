"""Hidden-state non-linearities phi_h of report §1.2, with their derivatives.

Each entry maps a name to ``Activation(phi, dphi, gamma)``:

* ``phi(a)``    -- the non-linearity applied to the pre-activation ``a_t``;
* ``dphi(a)``   -- its elementwise derivative phi'(a_t), used by the hand BPTT (report §2.2);
* ``gamma``     -- sup_a |phi'(a)|, the constant of the report's bound (report §4.1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax._checks import check_choice


class Activation(NamedTuple):
    """A hidden non-linearity: phi, its derivative phi' and gamma = sup |phi'|."""

    phi: Callable[[jax.Array], jax.Array]
    dphi: Callable[[jax.Array], jax.Array]
    gamma: float


def _dtanh(a):
    return 1.0 - jnp.tanh(a) ** 2  # d/da tanh(a) = 1 - tanh(a)^2


def _dsigmoid(a):
    s = jax.nn.sigmoid(a)
    return s * (1.0 - s)  # d/da sigma(a) = sigma(a) (1 - sigma(a))


def _drelu(a):
    return (a > 0).astype(a.dtype)  # d/da max(a, 0) = 1[a > 0] (0 at the kink, as jax.nn.relu)


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(jnp.tanh, _dtanh, 1.0),
    "sigmoid": Activation(jax.nn.sigmoid, _dsigmoid, 0.25),
    "relu": Activation(jax.nn.relu, _drelu, 1.0),
    "linear": Activation(lambda a: a, jnp.ones_like, 1.0),
}


def get_activation(name: str) -> Activation:
    """Return the :class:`Activation` called ``name`` (one of :data:`ACTIVATIONS`)."""
    check_choice("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]
