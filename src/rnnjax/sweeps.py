"""Sweeps over rho x seeds as one vmapped, jitted program, sharded over every device.

:func:`sharded_vmap` maps a function over the leading axis of its arguments with ``jax.vmap``
and splits that axis over a one-axis device mesh with ``jax.shard_map`` (no communication: each
device runs its own slice, padded to equal size). On one device it is plain
``jax.jit(jax.vmap(f))``. Each element runs the same per-element program either way, so results
equal the unsharded run up to float32 round-off (XLA may vectorise a different batch size
differently; bit-identical in the tests). For several CPU devices, call
:func:`rnnjax.devices.use_host_devices` before JAX starts. A program holding a CPU LAPACK call
stays on one device (see :data:`LAPACK_PRIMITIVES`).

On top of it, each (rho, seed) initialised as W_hh = rho W with W drawn from ``PRNGKey(seed)``:

* :func:`train_sweep` -- Experiment 2 (report §5): train every (rho, seed) in one program;
* :func:`stability_sweep` -- the top Lyapunov exponent and the lag-profile slope per (rho, seed)
  and prefix length, for the phase diagram;
* :func:`lag_spectra_sweep` -- lag profiles and Jacobian-product spectra, geometric means over
  segments and seeds, beside the report's bound (report §4.1);
* :func:`lyapunov_sweep` -- full Lyapunov spectra;
* :func:`curve_summary`, :func:`zero_crossing` -- summaries of the results.

Every sweep also runs as one program over every device of every process of a multi-process JAX job
(several processes on one machine, or a cluster): start each process with
:func:`rnnjax.devices.init_distributed` and make the same call in each; see the README.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rnnjax._checks import check_choice, check_positive_int
from rnnjax.activations import get_activation
from rnnjax.analysis import (
    check_lyapunov_args,
    jacobians_of,
    lag_slope,
    last_step_state_grad,
    log_lag_profile_of,
    lyapunov_of,
    product_log_singular_values,
    rnn_step,
)
from rnnjax.cells import RECURRENT_INITS, init_rnn, spectral_radius
from rnnjax.train import SPEC_NORMS, train

AXIS = "sweep"


def check_rhos(rhos) -> np.ndarray:
    """``rhos`` as a float array (R,) of finite values > 0; ``ValueError`` naming the bad one otherwise."""
    rhos = np.atleast_1d(np.asarray(rhos, dtype=float))
    if rhos.ndim != 1 or rhos.size == 0:
        raise ValueError(f"rhos must be a non-empty list of numbers, got shape {rhos.shape}")
    for r in rhos:
        if not np.isfinite(r) or r <= 0:
            raise ValueError(f"every rho must be a finite number > 0, got {r}")
    return rhos


def check_seeds(seeds) -> np.ndarray:
    """``seeds`` as a non-empty int array (S,) of distinct values >= 0."""
    seeds = np.atleast_1d(np.asarray(seeds))
    if seeds.ndim != 1 or seeds.size == 0 or not np.issubdtype(seeds.dtype, np.integer) or (seeds < 0).any():
        raise ValueError(f"seeds must be a non-empty list of integers >= 0, got {seeds.tolist()}")
    if len(set(seeds.tolist())) != seeds.size:
        raise ValueError(f"seeds must be distinct, got {seeds.tolist()}")
    return seeds.astype(np.int32)


def grid(rhos, seeds) -> tuple[np.ndarray, np.ndarray]:
    """The flat (rho, seed) grid, rho-major: two arrays (R * S,) -- entry r * S + s is (rhos[r], seeds[s])."""
    rhos, seeds = check_rhos(rhos), check_seeds(seeds)
    return np.repeat(rhos, seeds.size), np.tile(seeds, rhos.size)


def _sweep_grid(rhos, seeds, recurrent_init: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Validate a sweep's ``recurrent_init``, rhos and seeds; return the flat grid and its sizes (R, S)."""
    check_choice("recurrent_init", recurrent_init, RECURRENT_INITS)
    rho_flat, seed_flat = grid(rhos, seeds)
    return rho_flat, seed_flat, len(check_rhos(rhos)), len(check_seeds(seeds))


def _mapped_impl(*args, fn, mesh, shared):
    """vmap(fn) over the leading axis of all but the last ``shared`` args, shard_mapped over ``mesh``."""
    k = len(args) - shared
    f = jax.vmap(fn, in_axes=(0,) * k + (None,) * shared)
    if mesh is None:
        return f(*args)
    return jax.shard_map(f, mesh=mesh, in_specs=(P(AXIS),) * k + (P(),) * shared, out_specs=P(AXIS),
                         check_vma=False)(*args)  # per-element programs: nothing crosses devices


_STATIC = ("fn", "mesh", "shared")
_mapped = jax.jit(_mapped_impl, static_argnames=_STATIC)
# XLA's LLVM backend optimisations dominate compile time on CPU (seconds per program); level 0
# compiles ~5-10x faster and runs ~3-10x slower: right for smoke-test sizes, wrong for full runs.
FAST_COMPILE = {"xla_backend_optimization_level": 0}
_mapped_fast_compile = jax.jit(_mapped_impl, static_argnames=_STATIC, compiler_options=FAST_COMPILE)


# XLA:CPU custom calls into LAPACK. In jaxlib 0.10 a batched one splits its batch over the intra-op
# thread pool and blocks until done; when every pool thread is running a device's program (one host
# device per core), those waits never end. Programs holding one of these run on one device instead,
# on the jaxlib versions known to have the bug (measured on 0.10.2; the newest jaxlib a Python 3.11
# machine installs). Newer versions are not known to deadlock and are sharded like any program.
LAPACK_DEADLOCK_BELOW = (0, 11)  # jaxlib versions < this one keep LAPACK programs on one device


def _jaxlib_version() -> tuple[int, ...]:
    import jaxlib

    return tuple(int(p) for p in jaxlib.__version__.split(".")[:2] if p.isdigit())


LAPACK_PRIMITIVES = frozenset({"svd", "eig", "eigh", "qr", "geqrf", "geqp3", "householder_product", "lu",
                               "cholesky", "schur", "hessenberg", "tridiagonal", "tridiagonal_solve",
                               "triangular_solve"})


def _primitive_names(jaxpr) -> set[str]:
    """Names of every primitive in a (closed) jaxpr, sub-jaxprs (scan, cond, pjit, ...) included."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for value in eqn.params.values():
            for item in value if isinstance(value, (list, tuple)) else (value,):
                if hasattr(item, "eqns") or hasattr(getattr(item, "jaxpr", None), "eqns"):
                    names |= _primitive_names(item)
    return names


def uses_lapack(fn: Callable, *args, shared: int = 0) -> bool:
    """True when ``jax.vmap(fn)`` over ``args`` (the last ``shared`` not mapped) calls a LAPACK kernel."""
    k = len(args) - shared
    jaxpr = jax.make_jaxpr(jax.vmap(fn, in_axes=(0,) * k + (None,) * shared))(*args)
    return bool(_primitive_names(jaxpr) & LAPACK_PRIMITIVES)


def one_per_process(devices: Sequence) -> list:
    """The first of ``devices`` on each process (one device when a single process holds them all)."""
    first = {}
    for d in devices:
        first.setdefault(d.process_index, d)
    return [first[k] for k in sorted(first)]


def _global(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array laid out by ``sharding`` from a host array every process holds in full."""
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def sharded_vmap(fn: Callable, *, devices: Sequence | None = None, shared: int = 0,
                 fast_compile: bool = False) -> Callable:
    """``jax.vmap(fn)`` over the leading axis of the first arguments, that axis split over ``devices``.

    Args:
      fn: a per-element function ``fn(*batched, *shared_args) -> PyTree``. The compiled program is
        reused for equal ``fn`` (a module-level function, or a hashable callable such as a
        NamedTuple with ``__call__``) and equal shapes.
      devices: the devices to shard over; all of ``jax.devices()`` when None -- in a multi-process
        JAX job (:func:`rnnjax.devices.init_distributed`) every device of every process: each process
        computes the elements its devices hold, and every process gets all results (gathered with
        ``multihost_utils.process_allgather``). Every process must then make the same call with the
        same arguments. With one device the program is plain ``jax.jit(jax.vmap(fn))`` (no mesh)
        placed on that device.
      shared: how many trailing arguments every element shares (replicated, not mapped).
      fast_compile: compile with :data:`FAST_COMPILE` (seconds less per program, slower to run;
        for short analysis programs).

    Returns:
      ``g(*args)``: every leaf of the batched arguments carries a leading axis N (any N: it is
      padded up to a multiple of the device count by repeating elements, and the padding is
      dropped from the outputs, so results do not depend on the device count). ``g.devices(*args)``
      tells how many devices a call would use: one per process when the program holds a CPU LAPACK
      call (see :data:`LAPACK_PRIMITIVES`), which jaxlib 0.10 cannot run on every core's device of a
      process at once (:data:`LAPACK_DEADLOCK_BELOW`).
    """
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must name at least one device")

    def check(args):
        if isinstance(shared, bool) or not isinstance(shared, int) or not 0 <= shared < len(args):
            raise ValueError(f"shared must be an int in [0, {len(args)}) (one batched argument at least), "
                             f"got {shared!r}")
        batched = args[: len(args) - shared]
        leaves = jax.tree.leaves(batched)
        n = leaves[0].shape[0] if leaves and jnp.ndim(leaves[0]) else None
        if n is None or any(jnp.shape(leaf)[:1] != (n,) for leaf in leaves):
            raise ValueError(f"every batched argument needs the same leading axis, got "
                             f"{sorted({tuple(jnp.shape(leaf)[:1]) for leaf in leaves})}")
        return n

    def usable(args) -> list:
        if (len(devices) > 1 and devices[0].platform == "cpu" and _jaxlib_version() < LAPACK_DEADLOCK_BELOW
                and uses_lapack(fn, *args, shared=shared)):
            return one_per_process(devices)
        return devices

    mapped = _mapped_fast_compile if fast_compile else _mapped

    def run(*args):
        n = check(args)
        devs = usable(args)
        if len(devs) == 1:
            return mapped(*jax.device_put(args, devs[0]), fn=fn, mesh=None, shared=shared)
        mesh = Mesh(np.array(devs), (AXIS,))
        batched, rest = args[: len(args) - shared], args[len(args) - shared :]
        idx = np.arange(-(-n // len(devs)) * len(devs)) % n  # pad to a multiple of the device count
        # global arrays: each process places the slices its own devices hold (every process passes the same args)
        batched = jax.tree.map(lambda a: _global(np.asarray(a)[idx], NamedSharding(mesh, P(AXIS))), batched)
        rest = jax.tree.map(lambda a: _global(np.asarray(a), NamedSharding(mesh, P())), rest)
        out = mapped(*batched, *rest, fn=fn, mesh=mesh, shared=shared)
        if not all(leaf.is_fully_addressable for leaf in jax.tree.leaves(out)):  # a multi-process job
            from jax.experimental import multihost_utils

            out = multihost_utils.process_allgather(out, tiled=True)  # every process gets every result
        return jax.tree.map(lambda a: a[:n], out)

    run.devices = lambda *args: (check(args), len(usable(args)))[1]
    return run


# ----------------------------------------------------------------------------------------------
# Experiment 2: training over rho x seeds
# ----------------------------------------------------------------------------------------------


class _Init(NamedTuple):
    """Seeded initial parameters of one run: W_hh = rho W with W drawn from PRNGKey(seed) alone, so
    every rho of a seed scales the same matrix (report §5)."""

    sizes: tuple  # (D, H, O)
    recurrent_init: str
    input_std: float | None
    output_std: float | None

    def __call__(self, rho, seed):
        D, H, O = self.sizes
        return init_rnn(jax.random.PRNGKey(seed), D, H, O, rho=rho, recurrent_init=self.recurrent_init,
                        input_std=self.input_std, output_std=self.output_std)


class _TrainRun(NamedTuple):
    """One (rho, seed) run of :func:`train_sweep`; hashable, so the compiled sweep is reused."""

    init: _Init
    loss: str
    num_steps: int
    learning_rate: float
    optimizer: str
    clip_norm: float | None
    activation: str
    carry_state: bool
    spec_norm: str = "lanczos"

    def __call__(self, rho, seed, xs, targets):
        return train(self.init(rho, seed), xs, targets, loss=self.loss, num_steps=self.num_steps,
                     learning_rate=self.learning_rate, optimizer=self.optimizer, clip_norm=self.clip_norm,
                     activation=self.activation, carry_state=self.carry_state, spec_norm=self.spec_norm)


def _opt_float(x):
    return None if x is None else float(x)


def train_sweep(rhos, seeds, xs, targets, *, hidden_size: int, loss: str, num_steps: int, learning_rate,
                output_size: int | None = None, activation: str = "relu", recurrent_init: str = "gaussian",
                optimizer: str = "sgd", clip_norm=None, carry_state: bool = False, input_std=None, output_std=None,
                spec_norm: str = "lanczos", devices: Sequence | None = None, fast_compile: bool = False):
    """Initialise and train one vanilla RNN per (rho, seed), all in one jitted, vmapped program.

    Run (rho, seed) starts from :func:`rnnjax.init_rnn` with ``PRNGKey(seed)`` and ``rho`` (so the
    rhos of a seed share one random matrix) and is trained by :func:`rnnjax.train` on ``xs``,
    ``targets`` (see there: (N, T, D), item s mod N at step s). ``fast_compile`` trades run time
    for compile time (see :func:`sharded_vmap`; for smoke tests). ``output_size`` defaults to the
    input width D for ``loss="xent"`` (next-symbol prediction) and to ``targets.shape[-1]`` otherwise.

    Returns:
      ``(params, history)`` with leading axes (R, S): final :class:`RNNParams` and
      :class:`rnnjax.TrainHistory` of (R, S, num_steps) arrays. A run that goes non-finite halts
      alone (its ``history.finite`` turns False); the others are unaffected.
    """
    rho_flat, seed_flat, R, S = _sweep_grid(rhos, seeds, recurrent_init)
    check_positive_int("hidden_size", hidden_size)
    xs, targets = jnp.asarray(xs), jnp.asarray(targets)
    if xs.ndim not in (3, 4):
        raise ValueError(f"xs must be (N, T, D) or (N, B, T, D), got shape {tuple(xs.shape)}")
    if output_size is None:
        output_size = xs.shape[-1] if loss == "xent" else targets.shape[-1]
    check_positive_int("output_size", output_size)
    check_positive_int("num_steps", num_steps)
    init = _Init((xs.shape[-1], hidden_size, output_size), recurrent_init, _opt_float(input_std),
                 _opt_float(output_std))
    check_choice("spec_norm", spec_norm, SPEC_NORMS)
    one = _TrainRun(init, loss, num_steps, float(learning_rate), optimizer, _opt_float(clip_norm), activation,
                    bool(carry_state), spec_norm)
    params, history = sharded_vmap(one, devices=devices, shared=2, fast_compile=fast_compile)(
        jnp.asarray(rho_flat, jnp.float32), jnp.asarray(seed_flat), xs, targets)
    unflat = lambda a: a.reshape((R, S) + a.shape[1:])
    return jax.tree.map(unflat, params), jax.tree.map(unflat, history)


# ----------------------------------------------------------------------------------------------
# Phase diagram: top Lyapunov exponent and lag-profile slope over rho x seeds
# ----------------------------------------------------------------------------------------------


class _Stability(NamedTuple):
    """The per-(rho, seed) stability measures of :func:`stability_sweep` for every prefix length; hashable."""

    init: _Init
    activation: str
    loss: str
    lengths: tuple[int, ...]
    warmup_fraction: float

    def __call__(self, rho, seed, xs, targets):
        p = self.init(rho, seed)
        step, h0 = rnn_step(p, activation=self.activation), jnp.zeros(p.b_h.shape, p.W_hh.dtype)
        lyap, slope, gain = [], [], []
        for L in self.lengths:  # static prefixes: one compiled program for every length
            x, y = xs[:L], targets[:L]
            logs = log_lag_profile_of(step, h0, x, last_step_state_grad(p, x, y, loss=self.loss,
                                                                         activation=self.activation))
            warmup = int(self.warmup_fraction * L)
            lyap.append(lyapunov_of(step, h0, x, warmup=warmup, num=1)[0])  # LAPACK-free for num=1
            slope.append(lag_slope(logs))
            gain.append(logs[-1] - logs[0])
        return {"lyap_top": jnp.stack(lyap), "lag_slope": jnp.stack(slope), "log_gain": jnp.stack(gain)}


@partial(jax.jit, static_argnames=("init",), compiler_options=FAST_COMPILE)
def _weight_norms(rho, seed, *, init):
    """log ||W_hh||_2 and log spectral radius of every seeded initial W_hh (LAPACK: kept off the mesh)."""
    W_hh = jax.vmap(lambda r, s: init(r, s).W_hh)(rho, seed)
    return {"log_norm": jnp.log(jnp.linalg.svd(W_hh, compute_uv=False)[:, 0]),  # log ||W_hh||_2
            "log_radius": jnp.log(jax.vmap(spectral_radius)(W_hh))}  # log max |lambda(W_hh)|


def stability_sweep(rhos, seeds, xs, targets, *, hidden_size: int, output_size: int, activation: str,
                    lengths: Sequence[int] | None = None, warmup_fraction: float = 0.1,
                    recurrent_init: str = "gaussian", loss: str = "xent", input_std=None, output_std=None,
                    devices: Sequence | None = None, fast_compile: bool = False) -> dict:
    """Vanishing/exploding measures per (rho, seed) at initialisation, along the text ``xs (T, D)``.

    For every prefix length L in ``lengths`` (default: T), with L_L the loss at step L:

    * ``lyap_top`` (R, S, n) -- the top Lyapunov exponent (nats/step) over steps
      ``int(warmup_fraction * L)..L-1`` (state from 0);
    * ``lag_slope`` (R, S, n) -- the least-squares slope of log ||dL_L/dh_{L-k}|| over k = 0..L-1
      (nats/step): < 0 the gradient vanishes with the lag, > 0 it explodes;
    * ``log_gain`` (R, S, n) -- log ||dL_L/dh_1|| - log ||dL_L/dh_L||;
    * ``log_norm`` (R, S) -- log ||W_hh||_2, and ``log_radius`` (R, S) -- log spectral radius.

    All (rho, seed) and every length form one jitted, vmapped program, sharded over ``devices``
    (it holds no LAPACK call); the two weight norms are computed apart. ``fast_compile``: see
    :func:`sharded_vmap` (for small smoke-test sizes; ~10x slower to run). NumPy arrays; entries
    can be NaN where the forward state overflowed (e.g. ReLU with a large rho and a long L).
    """
    rho_flat, seed_flat, R, S = _sweep_grid(rhos, seeds, recurrent_init)
    xs, targets = jnp.asarray(xs), jnp.asarray(targets)
    if xs.ndim != 2 or targets.shape != xs.shape[:1]:
        raise ValueError(f"xs must be one sequence (T, D) and targets (T,), got {tuple(xs.shape)} and "
                         f"{tuple(targets.shape)}")
    lengths = (xs.shape[0],) if lengths is None else tuple(int(L) for L in lengths)
    if not lengths or any(not 2 <= L <= xs.shape[0] for L in lengths):
        raise ValueError(f"every length must lie in [2, T={xs.shape[0]}], got {list(lengths)}")
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must lie in [0, 1), got {warmup_fraction}")
    init = _Init((xs.shape[-1], hidden_size, output_size), recurrent_init, _opt_float(input_std),
                 _opt_float(output_std))
    one = _Stability(init, activation, loss, lengths, float(warmup_fraction))
    rho_flat, seed_flat = jnp.asarray(rho_flat, jnp.float32), jnp.asarray(seed_flat)
    out = sharded_vmap(one, devices=devices, shared=2, fast_compile=fast_compile)(rho_flat, seed_flat, xs, targets)
    out = {k: np.asarray(v).reshape(R, S, len(lengths)) for k, v in out.items()}
    norms = _weight_norms(rho_flat, seed_flat, init=init)  # LAPACK: one device, outside the sharded program
    out.update({k: np.asarray(v).reshape(R, S) for k, v in norms.items()})
    return out


# ----------------------------------------------------------------------------------------------
# Summaries of a training sweep, and the report's Figure 3 claims (report §5)
# ----------------------------------------------------------------------------------------------

TREND_DECADES = 0.3  # a change of more than 0.3 decade (a factor 2) over the run counts as a trend


def curve_summary(values, finite) -> dict:
    """Median-over-seeds curve of a per-step quantity and its trend.

    Args:
      values: (S, K) per seed and step (e.g. ||dL/dW_hh|| per update).
      finite: (S, K) bool; non-finite steps are left out of the median at that step.

    Returns:
      dict with ``steps`` (K',) kept steps, ``median``/``low``/``high`` (K',) median, min, max over
      the finite seeds; ``start``, ``end``, ``min``, ``max`` of the median; ``decades`` =
      least-squares slope of log10(median) against the step times the run length (the fitted
      change in decades); ``change_decades`` = log10(end / start); ``trend``: "rising" or
      "falling" when either change exceeds :data:`TREND_DECADES` in that direction (so a tenfold
      fall in the first steps followed by a level tail is "falling", not "flat"), "mixed" when
      they point opposite ways beyond it, else "flat". Steps where no seed is finite are dropped.
    """
    values, finite = np.asarray(values, float), np.asarray(finite, bool) & np.isfinite(values)
    if values.ndim != 2 or values.shape != finite.shape:
        raise ValueError(f"values and finite must both be (S, K), got {values.shape} and {finite.shape}")
    keep = finite.any(0)
    masked = np.where(finite, values, np.nan)[:, keep]
    steps = np.flatnonzero(keep)
    out = {"steps": steps, "median": np.nanmedian(masked, 0) if steps.size else masked[0],
           "low": np.nanmin(masked, 0) if steps.size else masked[0],
           "high": np.nanmax(masked, 0) if steps.size else masked[0]}
    if steps.size == 0:
        return out | {"start": None, "end": None, "min": None, "max": None, "decades": None, "change_decades": None,
                      "trend": None}
    med = out["median"]
    if steps.size > 1:
        y = np.log10(med)
        slope = np.polyfit(steps, y, 1)[0]  # OLS slope of log10(norm) per step
        decades = float(slope * (steps[-1] - steps[0]))
    else:
        decades = 0.0
    change = float(np.log10(med[-1] / med[0]))  # first to last step, in decades
    up, down = max(decades, change) > TREND_DECADES, min(decades, change) < -TREND_DECADES
    trend = "mixed" if up and down else "rising" if up else "falling" if down else "flat"
    return out | {"start": float(med[0]), "end": float(med[-1]), "min": float(med.min()),
                  "max": float(med.max()), "decades": decades, "change_decades": change, "trend": trend}


# ----------------------------------------------------------------------------------------------
# Lag profiles, Jacobian-product spectra and Lyapunov spectra over rho x seeds (report §4.1)
# ----------------------------------------------------------------------------------------------


class _LagSpectra(NamedTuple):
    """Per (rho, seed): vmapped over segments, the log lag profile (relative to ||g_T||), the log
    singular values of the backward Jacobian products and the report's log bound; hashable."""

    init: _Init
    activation: str
    loss: str
    gamma: float

    def __call__(self, rho, seed, xs, targets):
        p = self.init(rho, seed)
        step, h0 = rnn_step(p, activation=self.activation), jnp.zeros(p.b_h.shape, p.W_hh.dtype)

        def segment(x, y):
            g_T = last_step_state_grad(p, x, y, loss=self.loss, activation=self.activation)
            logs = log_lag_profile_of(step, h0, x, g_T)
            return logs - logs[0], product_log_singular_values(jacobians_of(step, h0, x))

        log_profile, log_sigma = jax.vmap(segment)(xs, targets)  # (M, T), (M, T, H)
        k = jnp.arange(xs.shape[1], dtype=p.W_hh.dtype)
        log_rate = jnp.log(self.gamma * jnp.linalg.svd(p.W_hh, compute_uv=False)[0])  # log(gamma ||W_hh||_2)
        return {"log_profile": log_profile, "log_sigma": log_sigma, "log_bound": k * log_rate}  # bound at lag k


def lag_spectra_sweep(rhos, seeds, xs, targets, *, hidden_size: int, output_size: int, activation: str,
                      recurrent_init: str = "gaussian", loss: str = "xent", input_std=None, output_std=None,
                      devices: Sequence | None = None, fast_compile: bool = False) -> dict:
    """Lag profiles and Jacobian-product spectra per rho, geometric means over segments and seeds.

    For every (rho, seed) (seeded init as :func:`train_sweep`) and every segment ``xs[m] (T, D)``
    (state reset to 0), with L_T the last step's loss:

    * ``log_profile`` (R, T): mean over seeds and segments of log(||dL_T/dh_{T-k}|| / ||dL_T/dh_T||),
      k = 0..T-1;
    * ``log_sigma`` (R, T, H): mean of log sigma_i(J_T ... J_{T-k+1}), row k-1 for lag k = 1..T;
    * ``log_bound`` (R, T): mean of k log(gamma ||W_hh||_2), k = 0..T-1 (the report's bound, §4.1).

    Means of logs are geometric means. Returns NumPy arrays.
    """
    rho_flat, seed_flat, R, S = _sweep_grid(rhos, seeds, recurrent_init)
    xs, targets = jnp.asarray(xs), jnp.asarray(targets)
    if xs.ndim != 3 or targets.shape != xs.shape[:2]:
        raise ValueError(f"xs must be segments (M, T, D) and targets (M, T), got {tuple(xs.shape)} and "
                         f"{tuple(targets.shape)}")
    init = _Init((xs.shape[-1], hidden_size, output_size), recurrent_init, _opt_float(input_std),
                 _opt_float(output_std))
    one = _LagSpectra(init, activation, loss, float(get_activation(activation).gamma))
    out = sharded_vmap(one, devices=devices, shared=2, fast_compile=fast_compile)(
        jnp.asarray(rho_flat, jnp.float32), jnp.asarray(seed_flat), xs, targets)
    out = {k: np.asarray(v) for k, v in out.items()}
    return {"log_profile": out["log_profile"].reshape(R, -1, xs.shape[1]).mean(1),  # over seeds x segments
            "log_sigma": out["log_sigma"].reshape(R, -1, xs.shape[1], hidden_size).mean(1),
            "log_bound": out["log_bound"].reshape(R, S, -1).mean(1)}


class _Lyapunov(NamedTuple):
    init: _Init
    activation: str
    warmup: int
    num: int | None

    def __call__(self, rho, seed, xs):
        p = self.init(rho, seed)
        return lyapunov_of(rnn_step(p, activation=self.activation), jnp.zeros(p.b_h.shape, p.W_hh.dtype), xs,
                           warmup=self.warmup, num=self.num)


def lyapunov_sweep(rhos, seeds, xs, *, hidden_size: int, output_size: int, activation: str,
                   recurrent_init: str = "gaussian", warmup: int = 0, num: int | None = None, input_std=None,
                   output_std=None, devices: Sequence | None = None, fast_compile: bool = False) -> np.ndarray:
    """Lyapunov spectra (R, S, num) of the seeded initial RNNs driven by ``xs (T, D)``, nats per step."""
    rho_flat, seed_flat, R, S = _sweep_grid(rhos, seeds, recurrent_init)
    xs = jnp.asarray(xs)
    check_lyapunov_args(jnp.zeros((hidden_size,), xs.dtype), xs, warmup=warmup, num=num, reorth_every=1)
    init = _Init((xs.shape[-1], hidden_size, output_size), recurrent_init, _opt_float(input_std),
                 _opt_float(output_std))
    out = sharded_vmap(_Lyapunov(init, activation, warmup, num), devices=devices, shared=1,
                       fast_compile=fast_compile)(
        jnp.asarray(rho_flat, jnp.float32), jnp.asarray(seed_flat), xs)
    return np.asarray(out).reshape(R, S, -1)


def zero_crossing(x, y) -> float | None:
    """The first x at which ``y`` turns from < 0 to >= 0, linearly interpolated; None if it never does.

    NaN entries of ``y`` are skipped. Locates where vanishing (rate < 0) turns into exploding (> 0).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    for i in range(1, len(y)):
        if y[i - 1] < 0 <= y[i]:
            return float(x[i - 1] + (x[i] - x[i - 1]) * (-y[i - 1]) / (y[i] - y[i - 1]))  # linear interpolation
    return None
