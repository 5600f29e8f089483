"""rnnjax.interop: Flax / Equinox cells as rnnjax cells, and PyTorch's nn.RNN / nn.LSTM / nn.GRU weights.

References are independent of the adapters: each library's own cell called step by step in a
Python loop, rnnjax's built-in cells (tested against their equations in test_cells.py) with the
weights mapped across by hand, and PyTorch's own forward pass.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnnjax
from rnnjax import cells
from rnnjax.interop import (
    from_equinox,
    from_flax,
    gru_params_from_torch,
    lstm_params_from_torch,
    params_to_torch,
    rnn_params_from_torch,
    to_equinox,
    to_flax,
)

eqx = pytest.importorskip("equinox")
flax = pytest.importorskip("flax")
from flax import linen, nnx  # noqa: E402

D, H, T = 3, 4, 8


@pytest.fixture(scope="module")
def xs():
    return jax.device_put(np.random.default_rng(7).normal(size=(T, D)).astype(np.float32))  # no program


def _own_loop_flax(module, xs):
    """The Flax cell's own call, step by step: carry, x -> carry, y; returns (ys (T, H), final carry)."""
    carry = module.initialize_carry((D,), rngs=nnx.Rngs(0))
    ys = []
    for x in xs:
        carry, y = module(carry, x)
        ys.append(y)
    return np.stack(ys), carry


def _own_loop_equinox(module, xs, carry):
    """The Equinox cell's own call, step by step: state = cell(x, state); returns the states' list."""
    states = []
    for x in xs:
        carry = module(x, carry)
        states.append(carry)
    return states


def _assert_tree_close(a, b, **kw):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(np.asarray(u), np.asarray(v), **kw), a, b)


def _bumped(params):
    """Every array + 0.5, computed in NumPy and put on the device (no eager program per shape)."""
    return jax.tree.map(lambda a: jax.device_put(np.asarray(a) + 0.5), params)


NNX_CELLS = {
    "LSTMCell": lambda key: nnx.LSTMCell(D, H, rngs=nnx.Rngs(key)),
    "GRUCell": lambda key: nnx.GRUCell(D, H, rngs=nnx.Rngs(key)),
    "SimpleCell": lambda key: nnx.SimpleCell(D, H, rngs=nnx.Rngs(key)),
}


# --------------------------------------------------------------------------------------- Flax


@pytest.mark.parametrize("name", sorted(NNX_CELLS))
def test_flax_nnx_cell_unrolls_like_its_own_call_and_merges_back(name, xs):
    module = NNX_CELLS[name](0)
    cell, params = from_flax(module)
    hs, carry_T = rnnjax.unroll(cell, params, xs)
    ys, carry_ref = _own_loop_flax(module, xs)
    np.testing.assert_allclose(hs, ys, atol=1e-6)  # hidden(carry_t) is the cell's output y_t
    _assert_tree_close(carry_T, carry_ref, atol=1e-6)
    _assert_tree_close(cell.initial_carry(params), module.initialize_carry((D,), rngs=nnx.Rngs(0)))  # zeros
    # params are the module's own arrays, and a changed set merges back into a module holding exactly it
    _assert_tree_close(params, nnx.to_pure_dict(nnx.state(module, nnx.Param)))
    bumped = _bumped(params)
    merged = to_flax(module, bumped)
    assert type(merged) is type(module)
    _assert_tree_close(nnx.to_pure_dict(nnx.state(merged, nnx.Param)), bumped)
    _assert_tree_close(nnx.to_pure_dict(nnx.state(module, nnx.Param)), params)  # the original is untouched


@pytest.mark.parametrize("name", sorted(NNX_CELLS))
def test_flax_nnx_init_recreates_fresh_params_of_the_same_module(name):
    cell, params = from_flax(NNX_CELLS[name](0))
    fresh = cell.init(jax.random.key(3), D, H)
    # the same module class built from key 3 directly, as Flax itself would
    _assert_tree_close(fresh, nnx.to_pure_dict(nnx.state(NNX_CELLS[name](jax.random.key(3)), nnx.Param)))
    assert not np.allclose(jax.tree.leaves(fresh)[-1], jax.tree.leaves(params)[-1])
    model = rnnjax.init_model(cell, jax.random.key(3), D, H, 2)
    assert model.readout.W_ho.shape == (H, 2)
    with pytest.raises(ValueError, match="hidden_size=4"):
        cell.init(jax.random.key(3), D, H + 1)


def test_flax_linen_cell_unrolls_like_its_own_apply(xs):
    module = linen.LSTMCell(features=H)
    variables = module.init(jax.random.key(0), module.initialize_carry(jax.random.key(0), (D,)), xs[0])
    cell, params = from_flax(module, variables)
    hs, (c_T, h_T) = rnnjax.unroll(cell, params, xs)
    carry, ys = module.initialize_carry(jax.random.key(0), (D,)), []
    for x in xs:
        carry, y = module.apply(variables, carry, x)
        ys.append(y)
    np.testing.assert_allclose(hs, np.stack(ys), atol=1e-6)  # hidden = carry[1]: linen's LSTM carry is (c, h)
    np.testing.assert_allclose(c_T, carry[0], atol=1e-6)
    assert to_flax(module, params) == {"params": params}
    assert jax.tree.structure(cell.init(jax.random.key(1), D, H)) == jax.tree.structure(params)
    with pytest.raises(ValueError, match="features=4"):
        cell.init(jax.random.key(1), D, H + 1)


def _lstm_from_flax(p):
    """Flax's nnx.LSTMCell weights as our LSTMParams: gate blocks [i|f|g|o], input kernels have no bias."""
    gates = [("ii", "hi"), ("if_", "hf"), ("ig", "hg"), ("io", "ho")]
    join = lambda arrays, axis=0: jax.device_put(np.concatenate([np.asarray(a) for a in arrays], axis))  # in NumPy
    return cells.LSTMParams(W_xh=join([p[i]["kernel"] for i, _ in gates], axis=1),
                                W_hh=join([p[h]["kernel"] for _, h in gates], axis=1),
                                b_h=join([p[h]["bias"] for _, h in gates]))


def test_flax_lstm_and_gru_equal_the_builtin_cells_with_weights_mapped(xs):
    lstm_cell, p = from_flax(NNX_CELLS["LSTMCell"](1))
    hs, (c_T, h_T) = rnnjax.unroll(lstm_cell, p, xs)
    ours, carry = rnnjax.unroll(cells.lstm(), _lstm_from_flax(p), xs)
    np.testing.assert_allclose(hs, ours, atol=1e-6)
    np.testing.assert_allclose(c_T, carry.c, atol=1e-6)  # Flax's carry is (c, h), ours (h, c)

    gru_cell, p = from_flax(NNX_CELLS["GRUCell"](1))
    mapped = cells.GRUParams(W_xh=p["dense_i"]["kernel"], W_hh=p["dense_h"]["kernel"],
                                 b_xh=p["dense_i"]["bias"], b_hh=jnp.zeros(3 * H))  # Flax's dense_h has no bias
    np.testing.assert_allclose(rnnjax.unroll(gru_cell, p, xs)[0], rnnjax.unroll(cells.gru(), mapped, xs)[0],
                               atol=1e-6)


# ------------------------------------------------------------------------------------ Equinox


@pytest.mark.parametrize("kind", ["GRUCell", "LSTMCell"])
def test_equinox_cell_unrolls_like_its_own_call_and_merges_back(kind, xs):
    module = getattr(eqx.nn, kind)(D, H, key=jax.random.key(0))
    cell, params = from_equinox(module)
    hs, carry_T = rnnjax.unroll(cell, params, xs)
    carry0 = cell.initial_carry(params)
    _assert_tree_close(carry0, (jnp.zeros(H), jnp.zeros(H)) if kind == "LSTMCell" else jnp.zeros(H))
    states = _own_loop_equinox(module, xs, carry0)
    h_ref = np.stack([s[0] if kind == "LSTMCell" else s for s in states])  # Equinox's LSTM state is (h, c)
    np.testing.assert_allclose(hs, h_ref, atol=1e-6)
    _assert_tree_close(carry_T, states[-1], atol=1e-6)
    bumped = _bumped(params)
    merged = to_equinox(module, bumped)
    assert type(merged) is type(module)
    _assert_tree_close(eqx.filter(merged, eqx.is_array), bumped)
    fresh = cell.init(jax.random.key(3), D, H)
    _assert_tree_close(fresh, eqx.filter(getattr(eqx.nn, kind)(D, H, key=jax.random.key(3)), eqx.is_array))
    with pytest.raises(ValueError, match="input_size=3"):
        cell.init(jax.random.key(3), D + 1, H)


def test_equinox_gru_equals_the_builtin_gru_with_weights_mapped(xs):
    module = eqx.nn.GRUCell(D, H, key=jax.random.key(2))
    cell, params = from_equinox(module)
    b_hh = np.zeros(3 * H, np.float32)
    b_hh[2 * H:] = module.bias_n  # bias_n is b_hn only
    mapped = cells.GRUParams(*jax.device_put((np.asarray(module.weight_ih).T, np.asarray(module.weight_hh).T,
                                              np.asarray(module.bias), b_hh)))  # mapped in NumPy
    np.testing.assert_allclose(rnnjax.unroll(cell, params, xs)[0], rnnjax.unroll(cells.gru(), mapped, xs)[0],
                               atol=1e-6)


def test_equinox_lstm_lyapunov_spectrum_equals_the_builtin_lstms():
    module = eqx.nn.LSTMCell(D, H, key=jax.random.key(4))
    cell, params = from_equinox(module)
    ours = cells.lstm()
    W_hh = 3.0 * np.asarray(module.weight_hh)  # a livelier recurrence (the weights mapped in NumPy)
    mapped = cells.LSTMParams(*jax.device_put((np.asarray(module.weight_ih).T, W_hh.T, np.asarray(module.bias))))
    params = eqx.tree_at(lambda m: m.weight_hh, params, jax.device_put(W_hh))
    xs = jax.device_put(np.random.default_rng(8).normal(size=(40, D)).astype(np.float32))
    np.testing.assert_allclose(rnnjax.unroll(cell, params, xs)[0], rnnjax.unroll(ours, mapped, xs)[0], atol=1e-6)

    @jax.jit
    def spectra(params, mapped, xs):
        return (rnnjax.lyapunov_of(lambda c, x: cell.step(params, c, x), cell.initial_carry(params), xs, warmup=10),
                rnnjax.lyapunov_of(lambda c, x: ours.step(mapped, c, x), ours.initial_carry(mapped), xs, warmup=10))

    theirs, builtin = (np.asarray(a) for a in spectra(params, mapped, xs))
    assert theirs.shape == (2 * H,) and np.all(np.isfinite(theirs))
    assert np.all(np.diff(theirs) <= 0) and theirs[0] > theirs[-1] + 0.5  # a real, spread spectrum
    np.testing.assert_allclose(theirs, builtin, rtol=1e-4, atol=1e-5)  # both carries flatten as (h, c)


# ------------------------------------------------------------------ training an adapted cell


def test_fit_trains_an_adapted_cell_and_the_params_merge_back():
    module = NNX_CELLS["GRUCell"](5)  # the nnx path: pure dict <-> nnx state inside jax.grad
    cell, params = from_flax(module)
    rng = np.random.default_rng(9)
    xs = rng.normal(size=(1, 16, 6, D)).astype(np.float32)  # N=1 batch of 16 sequences, T = 6
    targets = np.mean(xs[..., 0], axis=-1, keepdims=True)  # y = mean_t x_t[0], learnable from the last state
    W_ho = (0.1 * rng.normal(size=(H, 1))).astype(np.float32)
    model = rnnjax.ModelParams(params, rnnjax.Readout(*jax.device_put((W_ho, np.zeros(1, np.float32)))))
    trained, history = rnnjax.fit(rnnjax.make_loss(cell, "mse_last"), model, jax.device_put((xs, targets)),
                                  optax.adam(3e-2), num_steps=60)
    loss = np.asarray(history.loss)
    assert np.asarray(history.finite).all()
    assert loss[-1] < 0.5 * loss[0]
    # the trained cell parameters merge back into an nnx module, which then computes the trained model
    x = jax.device_put(xs[0, 0])
    ys, _ = _own_loop_flax(to_flax(module, trained.cell), x)
    hs_trained = np.asarray(jax.vmap(lambda p: rnnjax.unroll(cell, p, x)[0])(
        jax.device_put(jax.tree.map(lambda a, b: np.stack([a, b]), trained.cell, params))))
    np.testing.assert_allclose(ys, hs_trained[0], atol=1e-6)
    assert not np.allclose(ys, hs_trained[1], atol=1e-3)  # training moved the cell


class _TwoState(eqx.Module):
    """A user's own Equinox cell with a two-part state (a, b): a_t = tanh(x_t W + b_{t-1}), b_t = a_{t-1}."""

    W: jax.Array = eqx.field(default_factory=lambda: jax.device_put(np.full((D, H), 0.5, np.float32)))

    def __call__(self, x, state):
        a, b = state
        return jnp.tanh(x @ self.W + b), a


def test_equinox_adapter_takes_any_module_with_the_x_state_call_form(xs):
    module = _TwoState()
    cell, params = from_equinox(module, carry=(jnp.zeros(H), jnp.zeros(H)), input_size=D, hidden=lambda c: c[0])
    hs, (a_T, b_T) = rnnjax.unroll(cell, params, xs)
    a, b, ref = np.zeros(H), np.zeros(H), []
    for x in np.asarray(xs):
        a, b = np.tanh(x @ np.asarray(module.W) + b), a  # the equations, by hand
        ref.append(a)
    np.testing.assert_allclose(hs, np.stack(ref), atol=1e-6)
    np.testing.assert_allclose(b_T, ref[-2], atol=1e-6)
    with pytest.raises(ValueError, match="use the params returned"):  # no input_size/hidden_size to rebuild from
        cell.init(jax.random.key(0), D, H)


# --------------------------------------------------------------------------------- bad inputs


def test_adapters_reject_what_is_not_a_cell_they_can_run():
    gru = eqx.nn.GRUCell(D, H, key=jax.random.key(0))
    with pytest.raises(ValueError, match="nnx or linen"):
        from_flax(gru)
    with pytest.raises(ValueError, match="initialize_carry"):
        from_flax(nnx.Linear(D, H, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="linen cells only"):
        from_flax(NNX_CELLS["GRUCell"](0), {"params": {}})
    with pytest.raises(ValueError, match="holds no arrays"):
        from_flax(linen.GRUCell(features=H))
    with pytest.raises(ValueError, match="equinox recurrent cell"):
        from_equinox(NNX_CELLS["GRUCell"](0))
    with pytest.raises(ValueError, match="no int hidden_size"):
        from_equinox(eqx.nn.Linear(D, H, key=jax.random.key(0)))
    with pytest.raises(ValueError, match="cannot be called"):
        from_equinox(gru, carry=jax.device_put(np.zeros(H + 1, np.float32)))
    with pytest.raises(ValueError, match="not one array"):
        from_equinox(_TwoState(), carry=(jnp.zeros(H), jnp.zeros(H)), input_size=D)
    cell, params = from_equinox(gru)
    with pytest.raises(ValueError, match="shape"):
        wrong = jax.device_put(np.zeros((3 * H, H + 1), np.float32))
        to_equinox(gru, eqx.tree_at(lambda m: m.weight_hh, params, wrong))
    with pytest.raises(ValueError, match="structure"):
        to_flax(NNX_CELLS["GRUCell"](0), {"dense_i": {}})


# ------------------------------------------------------------------------------------ PyTorch


def _torch_case(torch, kind, nonlinearity="tanh"):
    torch.manual_seed(0)
    mods = {"rnn": lambda: torch.nn.RNN(D, H, nonlinearity=nonlinearity, batch_first=True),
            "lstm": lambda: torch.nn.LSTM(D, H, batch_first=True),
            "gru": lambda: torch.nn.GRU(D, H, batch_first=True)}
    module, linear = mods[kind]().double(), torch.nn.Linear(H, 2).double()
    with torch.no_grad():
        for p in module.parameters():  # weights of order 1, so the test sees the recurrence at work
            p.uniform_(-0.8, 0.8)
    return module, linear


def _ours(kind, params, xs, activation):
    if kind == "rnn":
        return rnnjax.rnn_forward(params, xs, activation=activation)
    cell = cells.lstm() if kind == "lstm" else cells.gru()
    return rnnjax.unroll(cell, params.cell, xs)[0], rnnjax.predict(cell, params, xs)


IMPORTERS = {"rnn": rnn_params_from_torch, "lstm": lstm_params_from_torch, "gru": gru_params_from_torch}


@pytest.mark.parametrize("kind,activation", [("rnn", "tanh"), ("rnn", "relu"), ("lstm", None), ("gru", None)])
def test_torch_import_in_float64_equals_torchs_forward_and_round_trips(kind, activation, x64):
    torch = pytest.importorskip("torch")
    module, linear = _torch_case(torch, kind, activation or "tanh")
    xs = np.random.default_rng(3).normal(size=(T, D))
    with torch.no_grad():
        out = module(torch.from_numpy(xs)[None])[0][0]
        hs_torch, ys_torch = out.numpy(), linear(out).numpy()
    params = IMPORTERS[kind](module.state_dict(), linear.state_dict())  # tensors taken as they are
    assert all(a.dtype == jnp.float64 for a in jax.tree.leaves(params))  # the state dict's float64 is kept
    hs, ys = _ours(kind, params, jnp.asarray(xs), activation)
    np.testing.assert_allclose(hs, hs_torch, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ys, ys_torch, rtol=1e-10, atol=1e-12)
    # identity read-out by default: outputs are the hidden states torch returns
    np.testing.assert_allclose(_ours(kind, IMPORTERS[kind](module.state_dict()), jnp.asarray(xs), activation)[1],
                               hs_torch, rtol=1e-10, atol=1e-12)
    # export: a fresh torch module loaded with params_to_torch computes the same
    state, readout = params_to_torch(params)
    fresh, fresh_linear = _torch_case(torch, kind, activation or "tanh")
    fresh.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    fresh_linear.load_state_dict({k: torch.tensor(v) for k, v in readout.items()})
    with torch.no_grad():
        np.testing.assert_allclose(fresh_linear(fresh(torch.from_numpy(xs)[None])[0][0]).numpy(), ys_torch,
                                   rtol=1e-10, atol=1e-12)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(IMPORTERS[kind](module.state_dict(), dtype=jnp.float32)))


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def _torch_equations(kind, activation, sd, xs):
    """PyTorch's documented nn.RNN / nn.LSTM / nn.GRU equations in column form W x + b, in NumPy, written
    independently of rnnjax: the reference where torch itself is not installed."""
    W_ih, W_hh, b_ih, b_hh = (sd[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    h, c, out = np.zeros(H), np.zeros(H), []
    for x in xs:
        gi, gh = W_ih @ x + b_ih, W_hh @ h + b_hh
        if kind == "rnn":
            h = np.tanh(gi + gh) if activation == "tanh" else np.maximum(gi + gh, 0.0)
        elif kind == "lstm":
            i, f, g, o = np.split(gi + gh, 4)
            c = _sig(f) * c + _sig(i) * np.tanh(g)
            h = _sig(o) * np.tanh(c)
        else:
            r, z = _sig(gi[:H] + gh[:H]), _sig(gi[H:2 * H] + gh[H:2 * H])
            n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
            h = (1 - z) * n + z * h
        out.append(h)
    return np.array(out)


@pytest.mark.parametrize("kind,activation", [("rnn", "tanh"), ("rnn", "relu"), ("lstm", None), ("gru", None)])
def test_torch_layout_import_matches_torchs_equations_without_torch(kind, activation, x64):
    rng = np.random.default_rng(4)
    n = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    sd = {"weight_ih_l0": rng.normal(size=(n * H, D)), "weight_hh_l0": 0.5 * rng.normal(size=(n * H, H)),
          "bias_ih_l0": rng.normal(size=n * H), "bias_hh_l0": rng.normal(size=n * H)}
    lin = {"weight": rng.normal(size=(2, H)), "bias": rng.normal(size=2)}
    xs = rng.normal(size=(T, D))
    params = IMPORTERS[kind](sd, lin)
    assert all(a.dtype == jnp.float64 for a in jax.tree.leaves(params))  # NumPy's float64 is kept
    hs, ys = _ours(kind, params, jax.device_put(xs), activation)
    ref = _torch_equations(kind, activation, sd, xs)
    assert np.abs(ref).max() > 0.1 and np.all(np.isfinite(ref))  # a live, finite recurrence to compare
    np.testing.assert_allclose(hs, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ys, ref @ lin["weight"].T + lin["bias"], rtol=1e-12, atol=1e-12)
    # export and re-import: the same parameters (the RNN's and LSTM's summed bias lands in bias_ih_l0)
    state, readout = params_to_torch(params)
    for a, b in zip(jax.tree.leaves(IMPORTERS[kind](state, readout)), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(state["bias_ih_l0"] + state["bias_hh_l0"], sd["bias_ih_l0"] + sd["bias_hh_l0"])


def test_params_to_torch_takes_a_builtin_cells_params_alone_or_in_model_params(x64):
    rng = np.random.default_rng(5)
    model = rnnjax.ModelParams(
        cells.GRUParams(*(jax.device_put(rng.normal(size=s)) for s in [(D, 3 * H), (H, 3 * H), 3 * H, 3 * H])),
        rnnjax.Readout(*jax.device_put((rng.normal(size=(H, 2)), np.zeros(2)))))
    state, readout = params_to_torch(model)
    np.testing.assert_array_equal(state["weight_hh_l0"], model.cell.W_hh.T)
    np.testing.assert_array_equal(state["bias_hh_l0"], model.cell.b_hh)
    np.testing.assert_array_equal(readout["weight"], model.readout.W_ho.T)
    vanilla = cells.VanillaParams(*(jax.device_put(rng.normal(size=s)) for s in [(D, H), (H, H), H]))
    state, readout = params_to_torch(vanilla)
    assert readout is None and state["weight_ih_l0"].shape == (H, D)
    np.testing.assert_array_equal(state["bias_hh_l0"], np.zeros(H))


def test_torch_import_rejects_bad_state_dicts():
    rng = np.random.default_rng(1)
    sd = {"weight_ih_l0": rng.normal(size=(H, D)), "weight_hh_l0": rng.normal(size=(H, H)),
          "bias_ih_l0": rng.normal(size=H), "bias_hh_l0": rng.normal(size=H)}
    with pytest.raises(ValueError, match="missing 'bias_hh_l0'"):
        rnn_params_from_torch({k: v for k, v in sd.items() if k != "bias_hh_l0"})
    with pytest.raises(ValueError, match=r"weight_hh_l0'\] must have shape \(4, 4\)"):
        rnn_params_from_torch({**sd, "weight_hh_l0": np.zeros((H, H + 1))})
    with pytest.raises(ValueError, match="weight_hh_l0"):  # an LSTM's state dict is not an RNN's
        rnn_params_from_torch({**sd, "weight_ih_l0": rng.normal(size=(4 * H, D)),
                               "weight_hh_l0": rng.normal(size=(4 * H, H))})
    with pytest.raises(ValueError, match="more than one layer"):
        rnn_params_from_torch({**sd, "weight_ih_l1": sd["weight_ih_l0"]})
    with pytest.raises(ValueError, match="mapping"):
        rnn_params_from_torch([1, 2])
    with pytest.raises(ValueError, match="readout"):
        rnn_params_from_torch(sd, {"weight": np.zeros((1, H + 1))})
    with pytest.raises(ValueError, match="params must be RNNParams"):
        params_to_torch({"W_xh": np.zeros((D, H))})
