"""Other frameworks' recurrent cells and weights as rnnjax cells and parameters.

Everything here returns either a :class:`rnnjax.Cell` with its parameter pytree, or the
parameter NamedTuples of the built-in cells, so :func:`rnnjax.unroll`, :func:`rnnjax.fit`,
:func:`rnnjax.lyapunov_of` and the lag profiles of :mod:`rnnjax.analysis` work on them unchanged.

* Flax (optional, ``pip install 'rnnjax[interop]'``):

  - :func:`from_flax` ``(cell) -> (Cell, params)`` for an ``nnx`` recurrent cell
    (``nnx.LSTMCell``, ``nnx.OptimizedLSTMCell``, ``nnx.GRUCell``, ``nnx.SimpleCell``, or any
    ``nnx`` module with ``initialize_carry`` and the call form ``carry, x -> carry, y``), or a
    ``linen`` one together with its ``params``; ``params`` is the cell's own arrays as a plain
    nested dict (``nnx.to_pure_dict`` of its ``nnx.Param`` state);
  - :func:`to_flax` ``(cell, params)``: trained params back into a new ``nnx`` module (for
    ``linen``: the variables ``{"params": params}``).

* Equinox (optional, same extra):

  - :func:`from_equinox` ``(cell) -> (Cell, params)`` for ``equinox.nn.GRUCell`` /
    ``equinox.nn.LSTMCell`` or any module called as ``cell(x, state) -> state``; ``params`` is
    the array half of ``eqx.partition(cell, eqx.is_array)``;
  - :func:`to_equinox` ``(cell, params)``: trained params back into the module (``eqx.combine``).

* PyTorch (no torch import needed: plain arrays, or CPU tensors), one-layer unidirectional:

  - :func:`rnn_params_from_torch` -- ``torch.nn.RNN`` (tanh or relu) -> :class:`rnnjax.RNNParams`;
  - :func:`lstm_params_from_torch` -- ``torch.nn.LSTM`` -> ``ModelParams(LSTMParams, Readout)``;
  - :func:`gru_params_from_torch` -- ``torch.nn.GRU`` -> ``ModelParams(GRUParams, Readout)``;
  - :func:`params_to_torch` -- any of the three (or a built-in cell's own params, or a
    :class:`rnnjax.ModelParams` of one) back to ``(state_dict, readout)`` in PyTorch's layout.

  Row convention: torch's ``W x`` is our ``x W^T``, so every matrix is transposed on the way in.
  The importers keep the state dict's dtype (float64 stays float64 under ``jax_enable_x64``)
  unless ``dtype=`` is given.

LSTM carries: rnnjax's own is ``LSTMCarry(h, c)``; Flax's LSTM cells carry ``(c, h)`` (the
adapter's ``hidden`` reads ``carry[1]``); Equinox's ``LSTMCell`` carries ``(h, c)`` (``hidden``
reads ``carry[0]``). The adapters keep each library's own carry, so a carry can be handed to
and from the library's cell unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax.cells.base import Cell, identity
from rnnjax.cells.gru import GRUParams
from rnnjax.cells.lstm import LSTMParams
from rnnjax.cells.vanilla import RNNParams, VanillaParams
from rnnjax.scan import ModelParams, Readout

# ------------------------------------------------------------------------ shared by the adapters

_INPUT_NAMES = ("in_features", "input_size")
_HIDDEN_NAMES = ("hidden_features", "hidden_size", "features")


def _float_dtype(params, fallback):
    """The promoted dtype of the floating leaves of ``params`` (``fallback`` when there are none)."""
    floats = [a.dtype for a in jax.tree.leaves(params) if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating)]
    return jnp.result_type(*floats) if floats else fallback


def _zeros_carry(template, params):
    """Zeros shaped like the ``template`` carry, in the parameters' dtype (so float64 params run in float64)."""
    return jax.tree.map(lambda a: jnp.zeros(a.shape, _float_dtype(params, a.dtype)), template)


def _default_hidden(carry, lstm_index: int | None, who: str):
    """``hidden`` for a carry: identity for one array, ``carry[lstm_index]`` for a known LSTM, else an error."""
    if lstm_index is not None:
        return lambda c: c[lstm_index]
    if isinstance(carry, jax.Array | np.ndarray | jax.ShapeDtypeStruct):
        return identity
    raise ValueError(f"{who}'s carry is not one array ({jax.tree.structure(carry)}): pass hidden=lambda carry: ... "
                     "returning the (H,) hidden state a read-out should see")


def _check_like(template, params, who: str) -> None:
    """Raise ``ValueError`` unless ``params`` has the tree structure and leaf shapes of ``template``."""
    if jax.tree.structure(params) != jax.tree.structure(template):
        raise ValueError(f"params do not fit {who}: structure {jax.tree.structure(params)}, "
                         f"expected {jax.tree.structure(template)}")
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(template), jax.tree.leaves(params), strict=True):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(f"params{jax.tree_util.keystr(path)} has shape {jnp.shape(b)}, {who} needs {jnp.shape(a)}")


def _sizes(module, input_size, who: str) -> tuple[int, int | None]:
    """``(D, H)`` from the module's attributes (``in_features``/``input_size``, ``hidden_features``/...)."""
    D = input_size if input_size is not None else next(
        (getattr(module, n) for n in _INPUT_NAMES if isinstance(getattr(module, n, None), int)), None)
    if not isinstance(D, int) or isinstance(D, bool) or D < 1:
        raise ValueError(f"{who} has no int in_features/input_size attribute: pass input_size=D, got {D!r}")
    H = next((getattr(module, n) for n in _HIDDEN_NAMES if isinstance(getattr(module, n, None), int)), None)
    return D, H


def _recreate(module, key_kwargs: dict, input_size: int, hidden_size: int, extra: dict):
    """A fresh ``type(module)`` of sizes (D, H): each constructor argument that the module stores under its
    own name (arrays excepted: those are what is re-drawn) is passed on; arguments it does not store (e.g.
    Flax's initialisers) take their defaults."""
    cls = type(module)
    kwargs = dict(key_kwargs)
    for name, p in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        if name in kwargs or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in _INPUT_NAMES:
            kwargs[name] = input_size
        elif name in _HIDDEN_NAMES:
            kwargs[name] = hidden_size
        elif name in extra:
            kwargs[name] = extra[name]
        elif name != "rngs" and name in vars(module) and not isinstance(getattr(module, name), jax.Array):
            kwargs[name] = getattr(module, name)
        elif p.default is p.empty:
            raise ValueError(f"cannot re-create a fresh {cls.__name__}: its constructor argument {name!r} is not "
                             "stored on the module; use the params returned by the adapter")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"cannot re-create a fresh {cls.__name__} ({e}); use the params returned by the adapter") \
            from None


def _init_checking(who, D, H, make, template):
    """``Cell.init`` of an adapter: fresh params from ``make(key)``, only for the adapted module's sizes."""

    def init(key, input_size, hidden_size):
        if (input_size, hidden_size) != (D, H):
            raise ValueError(f"this {who} adapter has input_size={D}, hidden_size={H}; got init(key, {input_size}, "
                             f"{hidden_size}): build a {who} of those sizes and adapt it instead")
        params = make(key)
        _check_like(template, params, f"the adapted {who} (a fresh one came out differently: use the params "
                                      "returned by the adapter)")
        return params

    return init


# ---------------------------------------------------------------------------------------- Flax


def _flax_lstm_classes():
    from flax import linen, nnx

    return (nnx.LSTMCell, nnx.OptimizedLSTMCell, linen.LSTMCell, linen.OptimizedLSTMCell)


def from_flax(cell, params=None, *, input_size: int | None = None,
              hidden: Callable | None = None) -> tuple[Cell, dict]:
    """A Flax recurrent cell as a :class:`rnnjax.Cell` and its parameters.

    Args:
      cell: an ``nnx`` module with ``initialize_carry(input_shape, rngs=...)`` and the call
        form ``cell(carry, x) -> (carry, y)`` (``nnx.LSTMCell``, ``nnx.OptimizedLSTMCell``,
        ``nnx.GRUCell``, ``nnx.SimpleCell``, a user's ``nnx.RNNCellBase``), or a ``linen`` cell
        (``linen.LSTMCell(features=H)``, ``linen.GRUCell``, ...).
      params: ``linen`` only (a linen module holds no arrays): its variables ``{"params": ...}`` or
        their ``"params"`` collection. Must be None for ``nnx``, whose arrays are its own.
      input_size: D, for an ``nnx`` cell without an ``in_features`` attribute.
      hidden: ``hidden(carry) -> h (H,)``; default: the carry itself when it is one array, and
        ``carry[1]`` for Flax's LSTM cells, whose carry is ``(c, h)``.

    Returns:
      ``(cell, params)``: ``params`` a nested dict of arrays (``nnx``: ``nnx.to_pure_dict`` of the
      ``nnx.Param`` state, e.g. ``{"ii": {"kernel": (D, H)}, "hi": {"kernel": (H, H), "bias": (H,)}, ...}``;
      ``linen``: the ``"params"`` collection). ``cell.step(params, carry, x)`` is the module's own
      call, ``cell.initial_carry(params)`` zeros shaped like ``initialize_carry((D,))`` in the
      parameters' dtype. ``cell.init(key, D, H)`` re-creates the module's class with the same sizes
      and the options it stores (``nnx``: gate/activation functions, dtypes; the initialisers
      Flax does not store take their defaults; ``linen``: ``cell.init``), and only for the adapted
      sizes. Train ``params`` with :func:`rnnjax.fit`, then :func:`to_flax` puts them back.
    """
    try:
        from flax import linen, nnx
    except ImportError as e:  # pragma: no cover - the extra is installed in the test environment
        raise ImportError("from_flax needs flax: pip install 'rnnjax[interop]'") from e
    lstm_index = 1 if isinstance(cell, _flax_lstm_classes()) else None  # Flax's LSTM carry is (c, h)
    if isinstance(cell, linen.Module):
        return _from_linen(cell, params, hidden, lstm_index)
    if not isinstance(cell, nnx.Module):
        raise ValueError(f"from_flax needs a flax nnx or linen recurrent cell, got {type(cell).__name__}")
    if params is not None:
        raise ValueError("params= is for linen cells only: an nnx module's own arrays are its parameters")
    if not callable(getattr(cell, "initialize_carry", None)):
        raise ValueError(f"{type(cell).__name__} has no initialize_carry: from_flax needs a recurrent cell "
                         "(nnx.RNNCellBase: carry, x -> carry, y)")
    who = type(cell).__name__
    D, H = _sizes(cell, input_size, who)
    graphdef, state, rest = nnx.split(cell, nnx.Param, ...)
    template = nnx.to_pure_dict(state)
    flat = list(nnx.to_flat_state(state))

    def to_module(p):
        from flax import traverse_util

        values = traverse_util.flatten_dict(p)
        return nnx.merge(graphdef, nnx.from_flat_state([(path, v.replace(values[path])) for path, v in flat]), rest)

    try:
        carry = jax.eval_shape(lambda: cell.initialize_carry((D,), rngs=nnx.Rngs(0)))
        x = jax.ShapeDtypeStruct((D,), _float_dtype(template, jnp.float32))
        out = jax.eval_shape(lambda p, c, x: to_module(p)(c, x), template, carry, x)
    except Exception as e:  # any failure: not a usable cell
        raise ValueError(f"{who} does not follow the nnx cell protocol (initialize_carry((D,), rngs=...), "
                         f"cell(carry, x) -> (carry, y)): {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
            from None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise ValueError(f"{who}(carry, x) must return (carry, y), got {jax.tree.structure(out)}")
    hidden = hidden or _default_hidden(carry, lstm_index, who)
    H = H if H is not None else jax.eval_shape(hidden, carry).shape[-1]

    def make(key):
        return nnx.to_pure_dict(nnx.state(_recreate(cell, {"rngs": nnx.Rngs(key)}, D, H, {}), nnx.Param))

    def step(p, c, x):
        return to_module(p)(c, x)[0]  # (carry_t, y_t) = cell(carry_{t-1}, x_t); keep the carry

    rnn = Cell(_init_checking(who, D, H, make, template), lambda p: _zeros_carry(carry, p), step, hidden)
    return rnn, template


def _from_linen(cell, params, hidden, lstm_index):
    who = type(cell).__name__
    if not callable(getattr(cell, "initialize_carry", None)):
        raise ValueError(f"{who} has no initialize_carry: from_flax needs a recurrent cell (linen.RNNCellBase)")
    if params is None:
        raise ValueError(f"a linen module holds no arrays: pass from_flax({who}(...), params) with "
                         "params = cell.init(key, carry, x) (or its 'params' collection)")
    if isinstance(params, Mapping) and set(params) == {"params"}:
        params = params["params"]
    params = dict(params) if isinstance(params, Mapping) else params
    H = getattr(cell, "features", None)
    try:
        carry = jax.eval_shape(lambda: cell.initialize_carry(jax.random.key(0), (1,)))
    except Exception as e:
        raise ValueError(f"{who}.initialize_carry(rng, input_shape) failed: {e}") from None
    hidden = hidden or _default_hidden(carry, lstm_index, who)

    def init(key, input_size, hidden_size):
        if H is not None and hidden_size != H:
            raise ValueError(f"this {who} adapter has features={H}; got hidden_size={hidden_size}: "
                             f"adapt a {who}(features={hidden_size}) instead")
        c0 = cell.initialize_carry(jax.random.key(0), (input_size,))
        return cell.init(key, c0, jnp.zeros((input_size,), jax.tree.leaves(c0)[0].dtype))["params"]

    def step(p, c, x):
        return cell.apply({"params": p}, c, x)[0]  # (carry_t, y_t) = cell(carry_{t-1}, x_t)

    return Cell(init, lambda p: _zeros_carry(carry, p), step, hidden), params


def to_flax(cell, params):
    """Parameters from :func:`from_flax` (e.g. trained by :func:`rnnjax.fit`) back into Flax.

    For an ``nnx`` cell: a new module of the same graph holding ``params`` (``cell`` itself is not
    changed; ``nnx.update(cell, nnx.state(to_flax(cell, params)))`` updates it in place). For a
    ``linen`` cell: its variables ``{"params": params}`` for ``cell.apply``.
    """
    from flax import linen, nnx, traverse_util

    if isinstance(cell, linen.Module):
        return {"params": params}
    if not isinstance(cell, nnx.Module):
        raise ValueError(f"to_flax needs the flax nnx or linen cell given to from_flax, got {type(cell).__name__}")
    graphdef, state, rest = nnx.split(cell, nnx.Param, ...)
    _check_like(nnx.to_pure_dict(state), params, type(cell).__name__)
    values = traverse_util.flatten_dict(params)
    new = nnx.from_flat_state([(path, v.replace(values[path])) for path, v in nnx.to_flat_state(state)])
    return nnx.merge(graphdef, new, rest)


# ------------------------------------------------------------------------------------- Equinox


def from_equinox(cell, *, carry=None, input_size: int | None = None,
                 hidden: Callable | None = None) -> tuple[Cell, object]:
    """An Equinox recurrent cell as a :class:`rnnjax.Cell` and its parameters.

    Args:
      cell: ``equinox.nn.GRUCell``, ``equinox.nn.LSTMCell``, or any ``eqx.Module`` called as
        ``cell(x (D,), state) -> state``.
      carry: an example state (any pytree; its shapes and structure are used, its values are not);
        default ``zeros(H)``, or ``(zeros(H), zeros(H))`` for ``LSTMCell``, with H its ``hidden_size``.
      input_size: D, for a module without an ``input_size`` attribute.
      hidden: ``hidden(carry) -> h (H,)``; default the state itself when it is one array, and
        ``carry[0]`` for ``LSTMCell``, whose state is ``(h, c)``.

    Returns:
      ``(cell, params)``: ``params`` the arrays of ``eqx.partition(cell, eqx.is_array)`` (a module
      of the same type with its non-array fields set to None), ``cell.step(params, carry, x)`` is
      the module's own call, ``cell.initial_carry(params)`` zeros in the parameters' dtype, and
      ``cell.init(key, D, H)`` builds a fresh ``type(cell)`` of the adapted sizes from the arguments
      it stores (``input_size``, ``hidden_size``, ``use_bias``; dtype of its weights). Train
      ``params`` with :func:`rnnjax.fit`, then :func:`to_equinox` puts them back.
    """
    try:
        import equinox as eqx
    except ImportError as e:  # pragma: no cover
        raise ImportError("from_equinox needs equinox: pip install 'rnnjax[interop]'") from e
    if not isinstance(cell, eqx.Module) or not callable(cell):
        raise ValueError(f"from_equinox needs an equinox recurrent cell (eqx.Module called as cell(x, state)), "
                         f"got {type(cell).__name__}")
    who = type(cell).__name__
    D, H = _sizes(cell, input_size, who)
    is_lstm = isinstance(cell, eqx.nn.LSTMCell)
    if carry is None:
        if H is None:
            raise ValueError(f"{who} has no int hidden_size attribute: pass carry= an example state")
        zeros = jnp.zeros((H,), _float_dtype(cell, jnp.float32))
        carry = (zeros, zeros) if is_lstm else zeros  # LSTMCell's state is (h, c)
    carry = jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), carry)
    params, static = eqx.partition(cell, eqx.is_array)
    try:
        out = jax.eval_shape(lambda p, c, x: eqx.combine(p, static)(x, c), params, carry,
                             jax.ShapeDtypeStruct((D,), _float_dtype(params, jnp.float32)))
    except Exception as e:
        raise ValueError(f"{who} cannot be called as cell(x (D={D},), state): "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if jax.tree.structure(out) != jax.tree.structure(carry):
        raise ValueError(f"{who}(x, state) must return a state like the one it takes: took "
                         f"{jax.tree.structure(carry)}, returned {jax.tree.structure(out)}")
    hidden = hidden or _default_hidden(carry, 0 if is_lstm else None, who)
    H = H if H is not None else jax.eval_shape(hidden, carry).shape[-1]

    def make(key):
        extra = {"dtype": _float_dtype(params, None)}
        return eqx.partition(_recreate(cell, {"key": key}, D, H, extra), eqx.is_array)[0]

    def step(p, c, x):
        return eqx.combine(p, static)(x, c)  # state_t = cell(x_t, state_{t-1})

    rnn = Cell(_init_checking(who, D, H, make, params), lambda p: _zeros_carry(carry, p), step, hidden)
    return rnn, params


def to_equinox(cell, params):
    """Parameters from :func:`from_equinox` (e.g. trained by :func:`rnnjax.fit`) back into the module:
    ``eqx.combine(params, static)``, a new module of ``cell``'s type and static fields."""
    import equinox as eqx

    if not isinstance(cell, eqx.Module):
        raise ValueError(f"to_equinox needs the equinox cell given to from_equinox, got {type(cell).__name__}")
    arrays, static = eqx.partition(cell, eqx.is_array)
    _check_like(arrays, params, type(cell).__name__)
    return eqx.combine(params, static)


# ------------------------------------------------------------------------------------- PyTorch


def _as_numpy(a):
    """A state-dict entry as a NumPy array: NumPy/JAX arrays as they are, torch tensors detached to the CPU."""
    if hasattr(a, "detach"):  # a torch.Tensor, without importing torch
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _torch_array(state_dict: Mapping, name: str, shape: tuple, dtype):
    if name not in state_dict:
        raise ValueError(f"state_dict is missing {name!r} (expected keys weight_ih_l0, weight_hh_l0, "
                         f"bias_ih_l0, bias_hh_l0); got keys {sorted(state_dict)}")
    a = _as_numpy(state_dict[name])
    if a.shape != shape:
        raise ValueError(f"state_dict[{name!r}] must have shape {shape}, got {a.shape}")
    return jnp.asarray(a, dtype)


def _from_torch(state_dict: Mapping, readout, n_gates: int, dtype):
    """(W_xh (D, nH), W_hh (H, nH), b_ih, b_hh, W_ho, b_o) from PyTorch's one-layer layout."""
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict must be a mapping of arrays, got {type(state_dict).__name__}")
    deeper = [k for k in state_dict if k.endswith("_l1") or "_reverse" in k]
    if deeper:
        raise ValueError(f"state_dict holds more than one layer or direction ({deeper}); only a one-layer, "
                         "unidirectional cell can be imported")
    w_ih = _as_numpy(state_dict.get("weight_ih_l0", np.zeros((0, 0))))
    if w_ih.ndim != 2 or w_ih.shape[0] % n_gates or w_ih.shape[0] == 0:
        shape = f"({n_gates}H, D)" if n_gates > 1 else "(H, D)"
        raise ValueError(f"state_dict['weight_ih_l0'] must have shape {shape}, got {w_ih.shape}")
    nH, D = w_ih.shape
    H = nH // n_gates
    W_ih = _torch_array(state_dict, "weight_ih_l0", (nH, D), dtype)
    dtype = W_ih.dtype  # the one given, or the state dict's own
    W_hh = _torch_array(state_dict, "weight_hh_l0", (nH, H), dtype)
    b_ih = _torch_array(state_dict, "bias_ih_l0", (nH,), dtype)
    b_hh = _torch_array(state_dict, "bias_hh_l0", (nH,), dtype)
    if readout is None:  # default read-out: the identity, so outputs == hs, as torch.nn.RNN/LSTM/GRU return
        W_ho, b_o = jnp.eye(H, dtype=dtype), jnp.zeros((H,), dtype)
    else:
        if not isinstance(readout, Mapping) or "weight" not in readout:
            raise ValueError("readout must be a mapping with 'weight' (O, H) and optional 'bias' (O,), "
                             "the layout of torch.nn.Linear's state_dict")
        w = _as_numpy(readout["weight"])
        if w.ndim != 2 or w.shape[1] != H:
            raise ValueError(f"readout['weight'] must have shape (O, H) with H={H}, got {w.shape}")
        O = w.shape[0]
        W_ho = jnp.asarray(w.T, dtype)  # torch's y = W h + b is our y = h W^T + b
        b_o = (jnp.zeros((O,), dtype) if readout.get("bias") is None
               else _torch_array(readout, "bias", (O,), dtype))
    return W_ih.T, W_hh.T, b_ih, b_hh, W_ho, b_o  # torch's W x is our x W^T (row convention)


def rnn_params_from_torch(state_dict: Mapping, readout=None, *, dtype=None) -> RNNParams:
    """:class:`RNNParams` from a ``torch.nn.RNN`` (one layer, ``nonlinearity`` tanh or relu) state dict.

    Args:
      state_dict: ``weight_ih_l0 (H, D)``, ``weight_hh_l0 (H, H)``, ``bias_ih_l0 (H,)``,
        ``bias_hh_l0 (H,)`` as arrays or CPU tensors, e.g. ``rnn.state_dict()``.
      readout: ``{"weight": (O, H), "bias": (O,)}`` (a ``torch.nn.Linear`` state dict), or None
        for the identity read-out W_ho = I_H, b_o = 0, so that ``outputs == hs`` -- the ``output``
        tensor that ``torch.nn.RNN`` itself returns.
      dtype: parameter dtype; None keeps the state dict's own.

    torch's h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) is report §1.2's RNN with
    W_xh = W_ih^T, W_hh = W_hh^T and b_h = b_ih + b_hh. The nonlinearity is not in the state dict:
    run the result with ``rnnjax.rnn_forward(params, xs, activation=...)`` (``"tanh"`` or ``"relu"``,
    as the torch module's ``nonlinearity``) or ``rnnjax.cells.vanilla(activation)``.
    """
    W_xh, W_hh, b_ih, b_hh, W_ho, b_o = _from_torch(state_dict, readout, 1, dtype)
    return RNNParams(W_xh=W_xh, W_hh=W_hh, b_h=b_ih + b_hh, W_ho=W_ho, b_o=b_o)  # b_h = b_ih + b_hh


def lstm_params_from_torch(state_dict: Mapping, readout=None, *, dtype=None) -> ModelParams:
    """``ModelParams(LSTMParams, Readout)`` from a ``torch.nn.LSTM`` (one layer) state dict of plain arrays.

    Args:
      state_dict: ``weight_ih_l0 (4H, D)``, ``weight_hh_l0 (4H, H)``, ``bias_ih_l0 (4H,)``,
        ``bias_hh_l0 (4H,)``, gates in PyTorch's order i, f, g, o (ours too), e.g.
        ``{k: v.detach().numpy() for k, v in lstm.state_dict().items()}`` (CPU tensors work too).
      readout: ``{"weight": (O, H), "bias": (O,)}`` (a ``torch.nn.Linear`` state dict), or None
        for the identity read-out W_ho = I_H, b_o = 0, so that ``outputs == hs`` -- the ``output``
        tensor that ``torch.nn.LSTM`` itself returns.
      dtype: parameter dtype; None keeps the state dict's own (float64 stays float64 under jax_enable_x64).

    The two biases enter only as their sum, b_h = bias_ih + bias_hh. No torch import needed.
    """
    W_xh, W_hh, b_ih, b_hh, W_ho, b_o = _from_torch(state_dict, readout, 4, dtype)
    return ModelParams(LSTMParams(W_xh=W_xh, W_hh=W_hh, b_h=b_ih + b_hh), Readout(W_ho, b_o))


def gru_params_from_torch(state_dict: Mapping, readout=None, *, dtype=None) -> ModelParams:
    """``ModelParams(GRUParams, Readout)`` from a ``torch.nn.GRU`` (one layer) state dict; see
    :func:`lstm_params_from_torch`.

    Gates in PyTorch's order r, z, n (ours too); both biases are kept (b_hn sits inside r_t * (.)).
    """
    W_xh, W_hh, b_ih, b_hh, W_ho, b_o = _from_torch(state_dict, readout, 3, dtype)
    return ModelParams(GRUParams(W_xh=W_xh, W_hh=W_hh, b_xh=b_ih, b_hh=b_hh), Readout(W_ho, b_o))


def params_to_torch(params):
    """The inverse of the importers: ``(state_dict, readout)`` of NumPy arrays in PyTorch's layout.

    ``params``: :class:`RNNParams` (-> ``torch.nn.RNN``); a built-in cell's own params (``VanillaParams``
    -> ``nn.RNN``, :class:`LSTMParams` -> ``nn.LSTM``, :class:`GRUParams` -> ``nn.GRU``; ``readout`` is
    then None); or a :class:`rnnjax.ModelParams` of one of those with its :class:`rnnjax.Readout`. Load with
    ``module.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()})``.

    For the RNN and the LSTM the summed bias goes to ``bias_ih_l0`` and ``bias_hh_l0`` is zero (same cell).
    """
    ro = None
    if isinstance(params, ModelParams):
        params, ro = params.cell, params.readout
    elif isinstance(params, RNNParams):
        params, ro = params.cell, params.readout
    if isinstance(params, VanillaParams | LSTMParams):
        b_ih, b_hh = params.b_h, jnp.zeros_like(params.b_h)  # b_h = b_ih + b_hh with b_hh = 0
    elif isinstance(params, GRUParams):
        b_ih, b_hh = params.b_xh, params.b_hh
    else:
        raise ValueError("params must be RNNParams, LSTMParams or GRUParams (or a built-in cell's params, alone or "
                         f"in a ModelParams), got {type(params).__name__}")
    state = {"weight_ih_l0": params.W_xh.T, "weight_hh_l0": params.W_hh.T, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh}
    readout = None if ro is None else {"weight": np.asarray(ro.W_ho.T), "bias": np.asarray(ro.b_o)}
    return {k: np.asarray(v) for k, v in state.items()}, readout
