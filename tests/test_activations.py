"""The hidden non-linearities: values against NumPy, phi' against jax.grad, phi' through h, gamma = sup |phi'|."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax import ACTIVATIONS, get_activation

NAMES = ["tanh", "sigmoid", "relu", "linear"]
REFERENCE = {  # phi written independently in NumPy
    "tanh": np.tanh,
    "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "relu": lambda a: np.where(a > 0, a, 0.0),
    "linear": lambda a: a,
}
put = jax.device_put  # NumPy data onto the device: no program (jnp.asarray, jnp.linspace compile one each)
GRID = np.concatenate([np.linspace(-6.0, 6.0, 241), [0.0, 1e-3, -1e-3]])  # includes the ReLU kink at 0


def test_registry_is_exactly_the_four_names():
    assert sorted(ACTIVATIONS) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_phi_matches_numpy(name, x64):
    act = get_activation(name)
    np.testing.assert_allclose(np.asarray(act.phi(put(GRID))), REFERENCE[name](GRID), rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_dphi_equals_jax_grad_of_phi(name, x64):
    act = get_activation(name)
    a = put(GRID)
    auto = jax.vmap(jax.grad(act.phi))(a)
    np.testing.assert_allclose(np.asarray(act.dphi(a)), np.asarray(auto), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_dphi_through_the_output_equals_dphi(name, x64):
    """The hand BPTT reads phi'(a_t) off h_t = phi(a_t); it must be the same number."""
    act = get_activation(name)
    a = put(GRID)
    np.testing.assert_allclose(np.asarray(act.dphi_h(act.phi(a))), np.asarray(act.dphi(a)), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_gamma_is_the_supremum_of_the_derivative(name, x64):
    act = get_activation(name)
    slopes = np.abs(np.asarray(act.dphi(put(np.linspace(-8.0, 8.0, 16001)))))  # the grid contains a = 0
    assert slopes.max() <= act.gamma + 1e-12
    assert slopes.max() == pytest.approx(act.gamma, rel=1e-9)  # attained (at 0, or everywhere on a > 0)


def test_known_derivative_values():
    assert float(get_activation("tanh").dphi(jnp.asarray(0.5))) == pytest.approx(1 - np.tanh(0.5) ** 2, rel=1e-6)
    assert float(get_activation("sigmoid").dphi(jnp.asarray(0.0))) == pytest.approx(0.25, rel=1e-7)
    assert float(get_activation("relu").dphi(jnp.asarray(0.0))) == 0.0  # the kink takes 0, as jax.nn.relu's grad
    assert float(get_activation("relu").dphi(jnp.asarray(2.0))) == 1.0


def test_unknown_activation_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown activation 'softplus'.*'linear'.*'relu'.*'sigmoid'.*'tanh'"):
        get_activation("softplus")
