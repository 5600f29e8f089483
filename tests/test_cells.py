"""Initialisers (exact spectral radius, orthogonality, identity, the Gaussian's circular-law radius),
seeding, the one-step cell against hand arithmetic, and the ValueErrors for bad sizes and names."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax import RECURRENT_INITS, RNNParams, init_recurrent, init_rnn, rnn_cell, spectral_radius

# jitted once per shape: eager JAX compiles every primitive separately, which is what costs in tests
_init_rnn = jax.jit(init_rnn, static_argnums=(1, 2, 3), static_argnames=("recurrent_init", "dtype"))
_init_recurrent = jax.jit(init_recurrent, static_argnums=(1,), static_argnames=("kind", "dtype"))


def _radius(W) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(W, dtype=np.float64)))))  # NumPy, independent of JAX


SIZES = (3, 5, 2)  # (D, H, O) of the small inits below: one compiled _init_rnn for all of them


def test_init_rnn_shapes_dtypes_and_zero_biases():
    p = _init_rnn(jax.random.PRNGKey(0), *SIZES)
    assert isinstance(p, RNNParams)
    assert [a.shape for a in p] == [(3, 5), (5, 5), (5,), (5, 2), (2,)]
    assert all(a.dtype == jnp.float32 for a in p)
    np.testing.assert_array_equal(np.asarray(p.b_h), 0.0)
    np.testing.assert_array_equal(np.asarray(p.b_o), 0.0)


def test_init_is_seeded():
    a, b, c = (_init_rnn(jax.random.PRNGKey(s), *SIZES) for s in (7, 7, 8))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.allclose(np.asarray(a.W_hh), np.asarray(c.W_hh))


def test_default_input_and_output_scales():
    """W_xh ~ N(0, 1/D) and W_ho ~ N(0, 1/H) in variance; 40,000 draws give the std to ~0.4%."""
    p = _init_rnn(jax.random.PRNGKey(1), 200, 200, 200)
    assert float(np.std(np.asarray(p.W_xh))) == pytest.approx(200 ** -0.5, rel=0.02)
    assert float(np.std(np.asarray(p.W_ho))) == pytest.approx(200 ** -0.5, rel=0.02)
    q = _init_rnn(jax.random.PRNGKey(1), 200, 200, 200, input_std=0.5, output_std=2.0)
    np.testing.assert_allclose(np.asarray(q.W_xh), np.asarray(p.W_xh) * 0.5 * 200 ** 0.5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(q.W_ho), np.asarray(p.W_ho) * 2.0 * 200 ** 0.5, rtol=1e-5)


@pytest.mark.parametrize("rho", [0.5, 0.99, 1.2])
def test_spectral_init_has_radius_exactly_rho(rho, x64):
    W = _init_recurrent(jax.random.PRNGKey(2), 40, rho=rho, kind="spectral", dtype=jnp.float64)
    assert _radius(W) == pytest.approx(rho, rel=1e-6)
    assert float(spectral_radius(W)) == pytest.approx(rho, rel=1e-6)


@pytest.mark.parametrize("rho", [0.9, 1.3])
def test_orthogonal_init_gives_rho_squared_identity(rho, x64):
    W = np.asarray(_init_recurrent(jax.random.PRNGKey(3), 30, rho=rho, kind="orthogonal", dtype=jnp.float64))
    np.testing.assert_allclose(W.T @ W, rho ** 2 * np.eye(30), atol=1e-12)
    np.testing.assert_allclose(W @ W.T, rho ** 2 * np.eye(30), atol=1e-12)


def test_identity_init_is_rho_times_identity():
    W = init_recurrent(jax.random.PRNGKey(0), 6, rho=0.7, kind="identity")
    np.testing.assert_array_equal(np.asarray(W), np.float32(0.7) * np.eye(6, dtype=np.float32))


@pytest.mark.parametrize(("seed", "rho"), [(0, 0.9), (1, 1.0), (2, 1.2)])
def test_gaussian_init_radius_is_rho_within_the_circular_law_tolerance(seed, rho):
    """Entries N(0, std 1/sqrt(H)) times rho have spectral radius -> rho as H grows (circular law:
    Girko 1984, Bai 1997). At H = 200 the radius / rho is not yet 1: over 2,000 NumPy draws it had mean
    1.041, sd 0.025, min 0.982, max 1.173 (edge fluctuations of order sqrt(log H / H), Rider 2003).
    [0.95, 1.20] contains all of those with a margin, while the usual mistakes (variance 1/H taken as
    std 1/H: radius ~0.07; std 1: radius ~14) fall far outside."""
    W = _init_recurrent(jax.random.PRNGKey(seed), 200, rho=rho, kind="gaussian")
    assert 0.95 <= _radius(W) / rho <= 1.20
    assert float(np.std(np.asarray(W))) == pytest.approx(rho / np.sqrt(200), rel=0.02)  # the std the report names


def test_rho_scales_the_same_draw_and_can_be_vmapped():
    rhos = jax.device_put(np.array([0.5, 1.0, 2.0], np.float32))
    Ws = np.asarray(jax.jit(jax.vmap(lambda r: init_rnn(jax.random.PRNGKey(4), *SIZES, rho=r).W_hh))(rhos))
    np.testing.assert_allclose(Ws[0] * 4, Ws[2], rtol=1e-6)
    np.testing.assert_allclose(Ws[1], np.asarray(_init_rnn(jax.random.PRNGKey(4), *SIZES).W_hh), rtol=1e-6)


def test_spectral_radius_of_a_known_matrix():
    c, s = np.cos(0.3), np.sin(0.3)
    W = jax.device_put(1.7 * np.array([[c, -s], [s, c]], np.float32))  # a scaled rotation: eigenvalues 1.7 e^{+-0.3i}
    assert float(spectral_radius(W)) == pytest.approx(1.7, rel=1e-6)


def test_rnn_cell_by_hand():
    p = RNNParams(W_xh=jnp.array([[0.5, -1.0]]), W_hh=jnp.array([[0.1, 0.2], [0.3, 0.4]]),
                  b_h=jnp.array([0.05, -0.05]), W_ho=jnp.zeros((2, 1)), b_o=jnp.zeros(1))
    h_prev, x = jnp.array([1.0, -2.0]), jnp.array([2.0])
    # a = x W_xh + h W_hh + b = (1, -2) + (0.1 - 0.6, 0.2 - 0.8) + (0.05, -0.05) = (0.55, -2.65)
    h, a = rnn_cell(p, h_prev, x, activation="tanh")
    np.testing.assert_allclose(np.asarray(a), [0.55, -2.65], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(h), np.tanh([0.55, -2.65]), rtol=1e-6)
    h_relu, _ = rnn_cell(p, h_prev, x, activation="relu")
    np.testing.assert_allclose(np.asarray(h_relu), [0.55, 0.0], rtol=1e-6)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(hidden_size=0), r"hidden_size must be a positive integer, got 0"),
    (dict(hidden_size=-3), r"hidden_size must be a positive integer, got -3"),
    (dict(hidden_size=2.5), r"hidden_size must be a positive integer, got 2.5"),
    (dict(input_size=0), r"input_size must be a positive integer"),
    (dict(output_size=True), r"output_size must be a positive integer, got True"),
    (dict(recurrent_init="xavier"),
     r"unknown recurrent_init 'xavier'; expected one of \['gaussian', 'identity', 'orthogonal', 'spectral'\]"),
    (dict(rho=0.0), r"rho must be finite and > 0 everywhere, got 0.0"),
    (dict(rho=-1.0), r"rho must be finite and > 0 everywhere, got -1.0"),
])
def test_bad_init_arguments_raise(kwargs, message):
    args = dict(input_size=2, hidden_size=4, output_size=1) | kwargs
    with pytest.raises(ValueError, match=message):
        init_rnn(jax.random.PRNGKey(0), args.pop("input_size"), args.pop("hidden_size"), args.pop("output_size"),
                 **args)


def test_every_named_init_is_accepted():
    assert set(RECURRENT_INITS) == {"gaussian", "spectral", "orthogonal", "identity"}
    for kind in RECURRENT_INITS:
        assert _init_recurrent(jax.random.PRNGKey(0), 3, kind=kind).shape == (3, 3)
