"""Gradient flossing: the exact gradient against finite differences, the surrogates against NumPy
re-implementations of their definitions, and flossing's effect measured by an independent NumPy
QR Lyapunov computation on the final parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import numpy_params, numpy_rnn

from rnnjax.analysis import lyapunov_of, lyapunov_spectrum, rnn_step
from rnnjax.cells import RNNParams
from rnnjax.flossing import FLOSS_GRADIENT, floss, flossing_loss

H, D, T, NUM = 6, 2, 50, 3


def numpy_lyapunov(p, xs, h0, num, *, warmup=0):
    """Benettin's QR method in NumPy (float64) for h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h)."""
    W, U, b = (np.asarray(a, np.float64) for a in (p.W_hh, p.W_xh, p.b_h))
    h, Q, total = np.asarray(h0, np.float64), np.eye(W.shape[0])[:, :num], np.zeros(num)
    for t, x in enumerate(np.asarray(xs, np.float64)):
        h = np.tanh(x @ U + h @ W + b)
        Q, R = np.linalg.qr((1 - h**2)[:, None] * W.T @ Q)  # J_t = diag(phi'(a_t)) W_hh^T (report §4.1)
        if t >= warmup:
            total += np.log(np.abs(np.diag(R)))
    return np.sort(total / (len(xs) - warmup))[::-1]


def _net(seed=0, rho=1.2, dtype=np.float64, input_scale=1.0, h=H, d=D):
    """:func:`conftest.numpy_rnn`'s model with b_h ~ N(0, std 0.1), the same generator's next draw."""
    rng = np.random.default_rng(seed)
    p = numpy_rnn(rng, d, h, 1, rho=rho, dtype=dtype, input_scale=input_scale)
    return p._replace(b_h=(0.1 * rng.standard_normal(h)).astype(dtype))


def _np_xs(seed=1, t=T, d=D, dtype=np.float64):
    """Test inputs drawn by NumPy (a transfer, no compiled random program per shape)."""
    return np.random.default_rng(seed).standard_normal((t, d)).astype(dtype)


def _flat(tree):
    """The leaves of ``tree`` as one NumPy vector, in ``ravel_pytree``'s order."""
    return np.concatenate([np.ravel(np.asarray(a)) for a in jax.tree.leaves(tree)])


def _central_differences(f, params, eps=1e-6):
    """(f(theta + eps e_k) - f(theta - eps e_k)) / (2 eps) for every coordinate k, in one vmapped program."""
    leaves, treedef = jax.tree.flatten(params)
    flat, ends = _flat(params), np.cumsum([np.size(a) for a in leaves])

    def unravel(v):
        parts = [v[start:end].reshape(np.shape(a)) for start, end, a in zip([0, *ends[:-1]], ends, leaves, strict=True)]
        return jax.tree.unflatten(treedef, parts)

    steps = eps * np.eye(flat.size, dtype=flat.dtype)
    values = np.asarray(jax.jit(jax.vmap(lambda v: f(unravel(v))))(np.concatenate([flat + steps, flat - steps])))
    return (values[: flat.size] - values[flat.size:]) / (2 * eps)


def _loss(q, xs, target, reorth_every=1, checkpoint=False):
    """The exact-gradient flossing loss of the small tanh RNN that the float64 tests share (compiled once)."""
    return flossing_loss(rnn_step(q), jnp.zeros(H, xs.dtype), xs, num=NUM, warmup=5, reorth_every=reorth_every,
                         target=target, checkpoint=checkpoint)


_grad = jax.jit(jax.grad(_loss), static_argnames=("reorth_every", "checkpoint"))


@pytest.mark.parametrize("reorth_every,checkpoint", [(1, False), (3, True)])
def test_exact_gradient_matches_central_differences(x64, reorth_every, checkpoint):
    p, xs = _net(input_scale=0.3), _np_xs()  # unsaturated: no near-singular step, so FD's truncation error is small
    grad = _grad(p, xs, 0.1, reorth_every=reorth_every, checkpoint=checkpoint)
    fd = _central_differences(lambda q: _loss(q, xs, 0.1, reorth_every, checkpoint), p)
    assert np.abs(fd).max() > 1e-2  # a real gradient, not zeros against zeros
    np.testing.assert_allclose(_flat(grad), fd, rtol=0, atol=1e-6 * np.abs(fd).max())
    if reorth_every == 1:  # the vanilla convenience has the same gradient
        spectrum = jax.jit(jax.grad(lambda q: jnp.sum((lyapunov_spectrum(q, xs, num=NUM, warmup=5) - 0.1) ** 2)))(p)
        for got, want in zip(spectrum, grad, strict=True):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-14)


def _surrogate_reference(p, xs, num, mode, eps=1e-6):
    """d/dtheta of sum_i lambda_i^2's surrogate, by central differences of its definition in NumPy:
    the states h_t (and for "local" the frames Q_{t-1}) come from the unperturbed parameters."""
    W0, U0, b0 = (np.asarray(a) for a in (p.W_hh, p.W_xh, p.b_h))
    hs, h = [np.zeros(H)], np.zeros(H)
    for x in np.asarray(xs):
        h = np.tanh(x @ U0 + h @ W0 + b0)
        hs.append(h)
    frames, Q = [np.eye(H)[:, :num]], np.eye(H)[:, :num]
    for t in range(len(xs)):  # the unperturbed frames Q_0..Q_{T-1}
        Q = np.linalg.qr((1 - hs[t + 1] ** 2)[:, None] * W0.T @ Q)[0]
        frames.append(Q)

    def logs_sum(W, U, b):  # sum_t log |R_t[i, i]| with the held quantities from the unperturbed run
        total, Q = np.zeros(num), frames[0]
        for t, x in enumerate(np.asarray(xs)):
            hn = np.tanh(x @ U + hs[t] @ W + b)  # one step from the held state h_{t-1}
            Qin = frames[t] if mode == "local" else Q
            Q, R = np.linalg.qr((1 - hn**2)[:, None] * W.T @ Qin)
            total += np.log(np.abs(np.diag(R)))
        return total / len(xs)

    lam = logs_sum(W0, U0, b0)
    grads = []
    for k, base in enumerate((W0, U0, b0)):
        g = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            args = [W0, U0, b0]
            up, dn = base.copy(), base.copy()
            up[idx] += eps
            dn[idx] -= eps
            args[k] = up
            l_up = logs_sum(*args)
            args[k] = dn
            g[idx] = np.sum(2 * lam * (l_up - logs_sum(*args)) / (2 * eps))  # d/dtheta sum_i lambda_i^2
        grads.append(g)
    return grads


@pytest.mark.parametrize("mode", ["frozen_states", "local"])
def test_surrogate_gradients_match_their_definitions(x64, mode):
    p, xs = _net(seed=3, rho=2.0), _np_xs(4, t=12)
    g = jax.jit(jax.grad(lambda q: flossing_loss(rnn_step(q), jnp.zeros(H), xs, num=NUM, gradient=mode)))(p)
    ref = _surrogate_reference(p, xs, NUM, mode)
    for got, want in zip((g.W_hh, g.W_xh, g.b_h), ref, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-8)


def test_float32_gradients_at_T_300():
    """Exact: float32 agrees with float64 where the dynamics contract. In a chaotic network the exact
    derivative of a finite-time exponent itself grows like exp(lambda_1 T); "local" stays bounded."""
    h = 8
    loss = lambda q, x, mode: flossing_loss(rnn_step(q), jnp.zeros(h, x.dtype), x, num=2, warmup=20, gradient=mode)
    grad = jax.jit(jax.grad(loss), static_argnums=2)
    xs32 = _np_xs(5, t=300, d=1, dtype=np.float32)
    p32 = _net(seed=4, rho=1.0, dtype=np.float32, h=h, d=1)
    g32 = np.asarray(grad(p32, xs32, "exact").W_hh)
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), p32)  # NumPy float64 arguments: no convert program
        g64 = np.asarray(grad(p64, np.asarray(xs32, np.float64), "exact").W_hh)
    np.testing.assert_allclose(g32, g64, rtol=0, atol=1e-4 * np.abs(g64).max())
    chaotic = _net(seed=11, rho=3.0, dtype=np.float32, input_scale=0.1, h=h, d=1)
    assert numpy_lyapunov(chaotic, xs32, np.zeros(h), 1)[0] > 0.01  # chaotic: lambda_1 > 0 (this draw: 0.066)
    norm = lambda mode: float(np.linalg.norm(_flat(grad(chaotic, xs32, mode))))
    assert norm("exact") > 1e6 and 0 < norm("local") < 10


# ------------------------------------------------------------------------------------------- floss

SEEDS = 6


@pytest.fixture(scope="module")
def edge_of_chaos():
    """tanh, rho 2.5, weak input (W_xh x 0.1): floss's defaults with plain Adam, seeds vmapped."""
    h, t = 12, 50
    nets = [_net(seed=s, rho=2.5, dtype=np.float32, input_scale=0.1, h=h, d=1) for s in range(SEEDS)]
    params = jax.tree.map(lambda *a: np.stack(a), *nets)
    xs = np.stack([_np_xs(100 + s, t=t, d=1, dtype=np.float32) for s in range(SEEDS)])
    run = jax.jit(jax.vmap(lambda p, x: floss(rnn_step, p, jnp.zeros(h), x, num=4, num_steps=800,
                                              optimizer=optax.adam(5e-3))))  # one program
    out, hist = run(params, xs)
    return params, xs, out, hist


def test_flossing_edge_of_chaos_cuts_sum_of_squares_5x_on_every_seed(edge_of_chaos):
    params, xs, out, hist = edge_of_chaos
    assert FLOSS_GRADIENT == "local"
    pick = lambda tree, s: jax.tree.map(lambda a: np.asarray(a)[s], tree)  # NumPy indexing: no eager programs
    tops = [numpy_lyapunov(pick(params, s), np.asarray(xs)[s], np.zeros(12), 1)[0] for s in range(SEEDS)]
    assert sum(top > 0 for top in tops) >= SEEDS // 2  # edge of chaos: half the starts are chaotic
    for s in range(SEEDS):
        before = numpy_lyapunov(pick(params, s), np.asarray(xs)[s], np.zeros(12), 4)
        after = numpy_lyapunov(pick(out, s), np.asarray(xs)[s], np.zeros(12), 4)
        assert np.sum(after**2) * 5 <= np.sum(before**2), (s, before, after)
    assert bool(np.asarray(hist.finite).all())
    np.testing.assert_allclose(np.asarray(hist.exponents)[:, 0], np.asarray(jax.jit(jax.vmap(  # one program
        lambda p, x: lyapunov_of(rnn_step(p), jnp.zeros(12), x, num=4)))(params, xs)), rtol=1e-5, atol=1e-6)


def test_flossing_a_contracting_network_brings_exponents_to_zero():
    h = 8
    p = _net(seed=10, rho=0.5, dtype=np.float32, h=h, d=1)
    # this draw (seed 10) reaches max |lambda| 0.032 < 0.05 in 800 steps; not every draw does (seed 7: 0.16)
    xs = _np_xs(8, t=60, d=1, dtype=np.float32)
    before = numpy_lyapunov(p, xs, np.zeros(h), 3)
    assert np.all(before < -0.5)
    out, hist = floss(rnn_step, p, np.zeros(h, np.float32), xs, num=3, num_steps=800, optimizer=optax.adam(3e-3))
    after = numpy_lyapunov(out, xs, np.zeros(h), 3)
    np.testing.assert_array_less(np.abs(after), 0.05)
    loss = np.asarray(hist.loss)
    assert loss[-1] < 1e-2 * loss[0]


def test_floss_steps_are_the_optimizer_applied_to_flossing_loss(x64):
    p, xs = _net(seed=5, input_scale=0.5), np.stack([_np_xs(6), _np_xs(7), _np_xs(8)])  # step s uses s mod 3
    lr, target = 0.05, -0.2
    out, hist = floss(rnn_step, p, np.zeros(H), xs, num=NUM, num_steps=4, optimizer=optax.sgd(lr), warmup=5,
                      gradient="exact", target=target)
    exponents, losses = np.asarray(hist.exponents), np.asarray(hist.loss)
    q = jax.tree.map(np.asarray, p)
    for s in range(4):
        lam = numpy_lyapunov(q, xs[s % 3], np.zeros(H), NUM, warmup=5)  # independent NumPy QR
        np.testing.assert_allclose(exponents[s], lam, rtol=1e-10)
        np.testing.assert_allclose(losses[s], np.sum((lam - target) ** 2), rtol=1e-10)
        g = _grad(q, xs[s % 3], target, reorth_every=1, checkpoint=False)  # the program the first test compiled
        q = jax.tree.map(lambda a, g: a - lr * np.asarray(g), q, g)  # plain SGD by hand, in NumPy
    for a, b in zip(out, q, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-14)


def test_floss_is_fit_on_the_flossing_loss(x64):
    """floss runs on fit's loop: Adam with a schedule on sum_i (lambda_i - target)^2, sequence s mod N at step s,
    gives fit's losses and parameters; its exponents are lyapunov_of at each step's parameters. In float64: two
    programs that compile the same arithmetic differently agree to round-off, far below these tolerances (in
    float32 that round-off reaches ~2e-6 after 5 Adam steps)."""
    import rnnjax

    p, xs = _net(seed=2, rho=1.5), np.stack([_np_xs(s, t=20) for s in (1, 2)])
    opt = optax.adam(optax.exponential_decay(0.02, 3, 0.5))
    h0 = np.zeros(H)
    out, hist = floss(rnn_step, p, h0, xs, num=2, num_steps=5, optimizer=opt, warmup=3, target=0.1)
    loss = lambda q, x: flossing_loss(rnn_step(q), h0, x, num=2, warmup=3, target=0.1, gradient=FLOSS_GRADIENT)
    want, fitted = rnnjax.fit(loss, p, xs, opt, num_steps=5)  # xs (N, T, D): step s on sequence s mod N
    assert np.asarray(hist.loss).dtype == np.float64
    np.testing.assert_allclose(np.asarray(hist.loss), np.asarray(fitted.loss), rtol=1e-10)
    np.testing.assert_array_equal(np.asarray(hist.finite), np.asarray(fitted.finite))
    for a, b in zip(out, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)
    lam0 = lyapunov_of(rnn_step(p), h0, xs[0], num=2, warmup=3)  # step 0's exponents, on the initial parameters
    np.testing.assert_allclose(np.asarray(hist.exponents)[0], np.asarray(lam0), rtol=1e-10)
    losses = np.asarray(hist.loss)
    assert losses[-1] < losses[0]


def test_non_finite_step_halts_flossing():
    f32 = lambda a: np.asarray(a, np.float32)  # NumPy arguments: no eager programs
    p = RNNParams(W_xh=f32(np.ones((1, 3))), W_hh=f32(1e30 * np.eye(3)), b_h=f32(np.zeros(3)),
                  W_ho=f32(np.ones((3, 1))), b_o=f32(np.zeros(1)))
    relu = lambda q: (lambda h, x: jax.nn.relu(x @ q.W_xh + h @ q.W_hh))  # overflows to inf in two steps
    out, hist = floss(relu, p, f32(np.ones(3)), f32(np.ones((20, 1))), num=2, num_steps=3, optimizer=optax.adam(0.1))
    assert not bool(np.asarray(hist.finite).any())
    for a, b in zip(out, p, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bad_arguments_raise_clear_errors():
    p, xs = _net(dtype=np.float32), _np_xs(dtype=np.float32)
    h0 = np.zeros(H, np.float32)
    with pytest.raises(ValueError, match="num must be at most"):
        floss(rnn_step, p, h0, xs, num=H + 1, num_steps=2, optimizer=optax.adam(1e-3))
    with pytest.raises(TypeError, match="optax.GradientTransformation"):
        floss(rnn_step, p, h0, xs, num=2, num_steps=2, optimizer="adam")
    with pytest.raises(ValueError, match="num_steps"):
        floss(rnn_step, p, h0, xs, num=2, num_steps=0, optimizer=optax.adam(1e-3))
    with pytest.raises(ValueError, match=r"xs must be one sequence \(T, D\)"):
        floss(rnn_step, p, h0, xs[0], num=2, num_steps=2, optimizer=optax.adam(1e-3))
    with pytest.raises(ValueError, match="unknown gradient"):
        flossing_loss(rnn_step(p), h0, xs, num=2, gradient="approx")


# ------------------------------------------------------------------------------ fit: regulariser, monitor

def _fit_setup(steps=7, h=8):
    import rnnjax

    cell = rnnjax.cells.vanilla("tanh", rho=1.5)
    rng = np.random.default_rng(0)  # every parameter N(0, std 0.5), W_hh's std near init's 1.5 / sqrt(8)
    model = numpy_params(lambda k, *a: rnnjax.init_model(cell, k, *a, dtype=jnp.float64), 1, h, 1,
                         draw=lambda n: 0.5 * rng.normal(size=n))
    xs = np.random.default_rng(1).standard_normal((3, 4, 20, 1))  # 3 batches of 4 sequences, T = 20
    ys = np.random.default_rng(2).standard_normal((3, 4, 1))
    make_step = lambda m: (lambda c, x: cell.step(m.cell, c, x))
    return rnnjax, cell, model, (xs, ys), make_step, np.zeros(h)


def test_fit_regularizer_and_monitor(x64):
    """One fit run with both: the regulariser's gradient is added on steps 0, 2, 4 (checked against a hand
    loop of SGD steps), and the monitor's records equal lyapunov_of on the parameters of steps 0, 3. In float64,
    where fit's program and the hand loop's differ by round-off alone (in float32 that reaches ~1e-5)."""
    rnnjax, cell, model, batches, make_step, h0 = _fit_setup()
    probe = np.random.default_rng(3).standard_normal((30, 1))
    monitor = rnnjax.spectrum_monitor(make_step, h0, probe, num=2, warmup=5)
    reg = rnnjax.flossing_regularizer(make_step, h0, lambda batch: batch[0][0], num=2, weight=0.5)
    loss_fn = rnnjax.make_loss(cell, "mse_last")
    lr = 0.05
    params, hist = rnnjax.fit(loss_fn, model, batches, optax.sgd(lr), num_steps=5, regularizer=reg,
                              regularize_every=2, monitor=monitor, monitor_every=3)
    p, value_and_grad = jax.tree.map(np.asarray, model), jax.jit(jax.value_and_grad(loss_fn))  # hand loop in NumPy
    norm = lambda tree: np.sqrt(sum(np.sum(np.asarray(a, np.float64) ** 2) for a in jax.tree.leaves(tree)))
    reg_grad = jax.jit(jax.grad(lambda q, x: 0.5 * flossing_loss(make_step(q), h0, x, num=2, gradient="local")))
    lyap = jax.jit(lambda q: lyapunov_of(make_step(q), h0, probe, num=2, warmup=5))
    monitored, losses, grad_norms = np.asarray(hist.monitor), np.asarray(hist.loss), np.asarray(hist.grad_norm)
    assert monitored.shape == (2, 2)  # steps 0 and 3
    for s in range(5):
        batch = jax.tree.map(lambda a, s=s: a[s % 3], batches)
        value, g = value_and_grad(p, batch)
        g = jax.tree.map(np.asarray, g)
        np.testing.assert_allclose(losses[s], float(value), rtol=1e-10)  # the loss alone
        if s % 2 == 0:  # weight * d/dp sum_i lambda_i^2 on the first sequence of the batch, "local" gradient
            gr = jax.tree.map(np.asarray, reg_grad(p, batch[0][0]))
            assert norm(gr) > 1e-3
            g = jax.tree.map(np.add, g, gr)
        np.testing.assert_allclose(grad_norms[s], norm(g), rtol=1e-10)
        if s % 3 == 0:  # the monitor saw this step's parameters, before its update
            np.testing.assert_allclose(monitored[s // 3], np.asarray(lyap(p)), rtol=1e-10, atol=1e-12)
        p = jax.tree.map(lambda a, b: a - lr * b, p, g)
    assert losses.dtype == np.float64
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(p), strict=True):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-10, atol=1e-12)
    assert not np.allclose(monitored[0], monitored[1], atol=1e-4)  # it moved
    with pytest.raises(ValueError, match="monitor_every"):
        rnnjax.fit(loss_fn, model, batches, optax.sgd(lr), num_steps=5, monitor=lambda p: 0.0, monitor_every=0)
