"""Sweeps: any pure run evaluated on a grid of its arguments, as one vmapped, jitted program over every device.

* :func:`sweep` -- ``run(**point)`` on the outer-product grid of 1-D axes (rho x seed x learning
  rate x ...), in blocks that fit the caches, optionally streamed to disk and resumable
  (:func:`load_sweep` reads a store back); built on :func:`rnnjax.sharding.sharded_vmap`.

On top of it, each (rho, seed) initialised as W_hh = rho W with W drawn from ``PRNGKey(seed)``:

* :func:`train_sweep` -- Experiment 2 (report §5): train every (rho, seed) in one program;
* :func:`stability_sweep` -- the top Lyapunov exponent and the lag-profile slope per (rho, seed)
  and prefix length, for the phase diagram;
* :func:`lag_spectra_sweep` -- lag profiles and Jacobian-product spectra, geometric means over
  segments and seeds, beside the report's bound (report §4.1);
* :func:`lyapunov_sweep` -- full Lyapunov spectra;
* :func:`curve_summary`, :func:`zero_crossing` -- summaries of the results.

Every sweep also runs over every device of every process of a multi-process JAX job (several
processes on one machine, or a cluster): start each process with
:func:`rnnjax.devices.init_distributed` and make the same call in each; see the README.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

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
from rnnjax.sharding import FAST_COMPILE, sharded_vmap
from rnnjax.train import SPEC_NORMS, train


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


def _rho_seed(rhos, seeds, recurrent_init: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate a sweep's ``recurrent_init``, rhos and seeds; return them as its two axes."""
    check_choice("recurrent_init", recurrent_init, RECURRENT_INITS)
    return check_rhos(rhos), check_seeds(seeds)


# ----------------------------------------------------------------------------------------------
# The generic sweep: any pure run(**point) on the outer-product grid of its axes
# ----------------------------------------------------------------------------------------------

# The default block (runs per compiled call) keeps each device's share of a block's working sets
# (:func:`run_bytes`, an upper bound: every value counted, none reused) within this many bytes, so one
# vmapped program does not fall out of the caches as a sweep grows (issue 21: 64 training runs in one
# call cost 6.5 ms a run, 4,096 cost 13.6 ms). Calibrated on Experiment 2's training (run_bytes 4.0
# MiB a run; 1,024 runs on 2 host devices in blocks of 16, 64, 128, 256, 1,024: 128 the fastest, 256
# and more 2x slower a run, under load; ``benchmarks/bench_sweeps.py --scale`` measures it):
# 64 such runs a device.
BLOCK_BYTES_PER_DEVICE = 256 * 2**20
STORE_FORMAT = "rnnjax.sweep/1"
GRID_FILE = "grid.json"


class _TracedLeaf:
    """Where an array leaf of ``run`` goes: arrays are passed to the program traced, the rest is static."""

    def __repr__(self):
        return "<array>"


_ARRAY = _TracedLeaf()


class _Static(NamedTuple):
    """The static part of ``run`` (hashable: the compiled program's cache key): its pytree structure and
    its non-array leaves, with :data:`_ARRAY` where an array leaf goes."""

    treedef: Any
    leaves: tuple

    def build(self, arrays):
        it = iter(arrays)
        return self.treedef.unflatten([next(it) if leaf is _ARRAY else leaf for leaf in self.leaves])


def _split_run(run) -> tuple[_Static, list]:
    """``run`` as (static part, its array leaves): a ``jax.tree_util.Partial`` passes its arrays traced."""
    leaves, treedef = jax.tree.flatten(run)
    is_array = [isinstance(leaf, (jax.Array, np.ndarray)) for leaf in leaves]
    static = _Static(treedef, tuple(_ARRAY if a else leaf for leaf, a in zip(leaves, is_array, strict=True)))
    return static, [leaf for leaf, a in zip(leaves, is_array, strict=True) if a]


class _Point(NamedTuple):
    """One grid point's run: ``summary(run(**dict(zip(names, values))))``; hashable, so its program is cached."""

    run: _Static
    names: tuple[str, ...]
    summary: Callable | None

    def __call__(self, *args):
        k = len(self.names)
        out = self.run.build(args[k:])(**dict(zip(self.names, args[:k], strict=True)))
        return out if self.summary is None else self.summary(out)


def _check_axes(axes: dict) -> dict[str, np.ndarray]:
    """Every axis as a non-empty 1-D NumPy array of JAX's canonical dtype (integers stay integers)."""
    if not axes:
        raise ValueError("sweep needs at least one axis, e.g. rnnjax.sweep(run, rho=np.linspace(0.8, 1.3, 64))")
    out = {}
    for name, values in axes.items():
        a = np.asarray(values)
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"axis {name} must be a non-empty 1-D array of values, got shape {a.shape}")
        if a.dtype != bool and not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"axis {name} must hold numbers, got dtype {a.dtype}")
        if np.issubdtype(a.dtype, np.inexact) and not np.isfinite(a).all():
            raise ValueError(f"axis {name} holds a non-finite value: {a[~np.isfinite(a)][0]}")
        cast = a.astype(jax.dtypes.canonicalize_dtype(a.dtype))
        if np.issubdtype(a.dtype, np.integer) and not np.array_equal(cast, a):
            raise ValueError(f"axis {name} holds an integer outside {cast.dtype}'s range")
        out[name] = cast
    return out


def _jaxpr_bytes(jaxpr, skip=()) -> int:
    """Bytes of every value a jaxpr defines (its inputs but ``skip``, every equation's outputs, sub-jaxprs
    of scan/cond/pjit once each): the working set with no buffer reused, an upper bound."""
    nbytes = lambda v: int(np.prod(getattr(v.aval, "shape", ()), dtype=np.int64)) * getattr(
        getattr(v.aval, "dtype", None), "itemsize", 0)
    skip = {id(v) for v in skip}
    total = sum(nbytes(v) for v in jaxpr.invars if id(v) not in skip)
    for eqn in jaxpr.eqns:
        total += sum(nbytes(v) for v in eqn.outvars)
        for value in eqn.params.values():
            for item in value if isinstance(value, (list, tuple)) else (value,):
                inner = getattr(item, "jaxpr", item)
                if hasattr(inner, "eqns"):
                    total += _jaxpr_bytes(inner)
    return total


@lru_cache(maxsize=128)
def _plan(point: _Point, avals: tuple) -> tuple[Any, int]:
    """(shape/dtype pytree of one run's result, its working set in bytes), traced once per (point, shapes).

    The working set is what one more run adds: the bytes of the vmapped program over two runs minus
    over one (values every run shares, such as transformed data, cancel)."""
    k = len(point.names)

    def count(n):
        args = [jax.ShapeDtypeStruct((n, *s), d) for s, d in avals[:k]] + [jax.ShapeDtypeStruct(s, d)
                                                                           for s, d in avals[k:]]
        closed, out = jax.make_jaxpr(jax.vmap(point, in_axes=(0,) * k + (None,) * (len(avals) - k)),
                                     return_shape=True)(*args)
        return _jaxpr_bytes(closed.jaxpr, skip=closed.jaxpr.invars[k:]), out

    (one, out), (two, _) = count(1), count(2)
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), out), two - one


def run_bytes(run, **point) -> int:
    """The working set of one ``run(**point)`` in bytes (values of one point, e.g. ``rho=1.0, seed=0``).

    Every value its program defines per run, counted once with no buffer reused (the per-step values
    of a ``lax.scan`` once, its stacked outputs in full; arrays ``run`` carries as a ``Partial``, and
    values computed from them alone, not counted): an upper bound, from two traces (no compile).
    :func:`sweep`'s default block divides :data:`BLOCK_BYTES_PER_DEVICE` by it.
    """
    static, arrays = _split_run(run)
    names = tuple(point)
    values = [np.asarray(v, jax.dtypes.canonicalize_dtype(np.asarray(v).dtype)) for v in point.values()]
    avals = tuple((tuple(np.shape(a)), jnp.result_type(a)) for a in [*values, *arrays])
    return _plan(_Point(static, names, None), avals)[1]


def default_block(per_run_bytes: int, n_devices: int) -> int:
    """Runs per block: each device's share of the working sets within :data:`BLOCK_BYTES_PER_DEVICE`.

    ``n_devices * max(1, BLOCK_BYTES_PER_DEVICE // per_run_bytes)``, a multiple of the device count.
    """
    return n_devices * max(1, BLOCK_BYTES_PER_DEVICE // max(int(per_run_bytes), 1))


def _describe(obj) -> str:
    """A text that names ``obj`` the same in every process (memory addresses removed)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(obj))


def _digest(arrays) -> str:
    """sha256 of arrays' dtypes, shapes and bytes: whether a resumed sweep was given the same data."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _leaf_names(struct) -> list[str]:
    """Names of a result's leaves in a store: their pytree paths ("loss", "1.W_hh", "lyap_top"; "result" alone)."""
    paths = jax.tree_util.tree_flatten_with_path(struct)[0]
    return [jax.tree_util.keystr(path, simple=True, separator=".") or "result" for path, _ in paths]


def _write_atomic(path: Path, write) -> None:
    """``write(file)`` into a temporary file beside ``path``, then rename it: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


NONFINITE = "_nonfinite"  # a store block's bool (block,): which runs' results hold a NaN or an infinity


def _nonfinite(leaves) -> np.ndarray:
    """Per run (the leading axis), whether any floating leaf holds a NaN or an infinity."""
    bad = np.zeros(len(leaves[0]), bool)
    for a in leaves:
        if np.issubdtype(a.dtype, np.inexact):
            bad |= ~np.isfinite(a).reshape(len(a), -1).all(1)
    return bad


def _block_file(out: Path, b: int) -> Path:
    return out / f"block_{b:06d}.npz"


def _open_store(out: Path, settings: dict) -> None:
    """Create the store ``out`` with its ``grid.json``, or check that the one there holds these settings."""
    settings = json.loads(json.dumps(settings))  # as it reads back
    grid_file = out / GRID_FILE
    if grid_file.exists():
        stored = json.loads(grid_file.read_text())
        for key in dict.fromkeys([*settings, *stored]):
            if stored.get(key) != settings.get(key):
                there, here = (str(v if not isinstance(v, list) else v)[:80] for v in (stored.get(key),
                                                                                     settings.get(key)))
                raise ValueError(f"out={out} holds another sweep: its {key} is {there} there, {here} here; "
                                 f"resume with the same grid and settings, or use another out")
        return
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(grid_file, lambda f: f.write(json.dumps(settings, indent=1).encode()))


class SweepStore(NamedTuple):
    """A sweep read back from its ``out`` folder by :func:`load_sweep`."""

    axes: dict  # axis name -> values (in grid order)
    results: dict  # leaf name (its pytree path, e.g. "1.loss") -> array (*axis lengths, ...)
    settings: dict  # the grid.json record: block size, the run's and summary's description, data digest
    nonfinite: np.ndarray  # bool (*axis lengths): the runs whose result holds a NaN or an infinity


def load_sweep(out) -> SweepStore:
    """Read a whole sweep store written by :func:`sweep` with ``out=`` (any process, any machine).

    Each block is also one line of NumPy: ``np.load(out / "block_000000.npz")`` holds that block's
    runs (flat grid order, the last block padded) under the leaf names of ``grid.json``, and
    ``_nonfinite``: which of them hold a NaN or an infinity (``SweepStore.nonfinite`` for the grid).
    Raises ``ValueError`` when blocks are missing (a sweep still running, or killed: run it again).
    """
    out = Path(out)
    grid_file = out / GRID_FILE
    if not grid_file.exists():
        raise ValueError(f"{out} holds no sweep ({GRID_FILE} not found)")
    settings = json.loads(grid_file.read_text())
    if settings.get("format") != STORE_FORMAT:
        raise ValueError(f"{grid_file} is not an rnnjax sweep store (format {settings.get('format')!r})")
    missing = [b for b in range(settings["blocks"]) if not _block_file(out, b).exists()]
    if missing:
        raise ValueError(f"{out} is incomplete: {len(missing)} of {settings['blocks']} blocks missing (first: "
                         f"{missing[0]}); run the same sweep with out= again to finish it")
    axes = {a["name"]: np.asarray(a["values"], a["dtype"]) for a in settings["axes"]}
    lengths = tuple(len(v) for v in axes.values())
    leaves = settings["results"]
    results = {name: np.empty((settings["blocks"] * settings["block"], *spec["shape"]), spec["dtype"])
               for name, spec in [*leaves.items(), (NONFINITE, {"shape": [], "dtype": "bool"})]}
    B = settings["block"]
    for b in range(settings["blocks"]):
        with np.load(_block_file(out, b)) as f:
            for name in results:
                results[name][b * B:(b + 1) * B] = f[name]
    n = settings["runs"]
    results = {k: v[:n].reshape(lengths + v.shape[1:]) for k, v in results.items()}
    return SweepStore(axes, results, settings, results.pop(NONFINITE))


def print_progress(done: int, total: int, elapsed_s: float, left_s: float | None) -> None:
    """A ready-made ``progress`` hook for :func:`sweep`: one line to stderr per block,
    ``sweep: block 3/16, 12 s elapsed, ~52 s left``."""
    import sys

    left = "" if left_s is None else f", ~{left_s:.0f} s left"
    print(f"sweep: block {done}/{total}, {elapsed_s:.0f} s elapsed{left}", file=sys.stderr, flush=True)


def history_only(result):
    """A ready-made ``summary`` for runs returning ``(params, history)`` (:func:`rnnjax.train`,
    :func:`rnnjax.fit`, :func:`train_sweep`): ``(None, history)``, the final parameters dropped inside the
    program. They are most of a training sweep's results (Experiment 2's 50-unit RNN: five times the bytes
    of its 200-step history), so a sweep that keeps only histories holds memory near what they need;
    ``params, history = train_sweep(..., summary=history_only)`` gives ``params`` None."""
    return None, result[1]


def sweep(run: Callable, *, devices: Sequence | None = None, block: int | None = None,
          summary: Callable | None = None, out=None, progress: Callable | None = None,
          fast_compile: bool = False, batch_size: int | None = None, **axes):
    """Evaluate ``run(**point)`` on every point of the outer-product grid of ``axes``, as one compiled program.

    ``rnnjax.sweep(run, rho=np.linspace(0.8, 1.3, 64), seed=np.arange(4))`` calls ``run(rho=r, seed=s)``
    for every (r, s) -- as ``jax.vmap`` over the flat grid (rho-major), split over every device of
    every process (:func:`rnnjax.sharding.sharded_vmap`) -- and returns ``run``'s pytree with leading
    axes (64, 4) on every leaf. Equal to calling ``run`` point by point (the same per-point program;
    float32 round-off aside where XLA vectorises a batch differently).

    Args:
      run: a pure function of scalars (one per axis, by name) returning a pytree of arrays. Static:
        the compiled program is cached on (run, axis names, lengths, devices, batch_size), so a second
        call with new axis values of the same lengths compiles nothing -- but a fresh closure or
        ``lambda`` is a new ``run`` and compiles again (define it once, or use a hashable callable such
        as a NamedTuple with ``__call__``). Arrays it closes over are compiled in as constants; pass data
        as ``jax.tree_util.Partial(f, xs, ys)`` to have them traced (new data, no compile).
      devices: the devices to split the runs over (default every device of every process).
      block: runs per compiled call (the grid runs block after block, one compiled program for
        every block, the last one padded by repeating its last run). Default :func:`default_block`
        of the run's working set (:func:`run_bytes`): blocks that fit the caches; the whole grid in
        one call when it fits one block.
      summary: ``summary(result) -> pytree``, applied to each run's result inside the program; only
        what it returns is kept (e.g. the last loss of a long history). Static, like ``run``.
      out: a folder: each finished block is written at once (``block_NNNNNN.npz``, atomically) beside
        ``grid.json`` (the axes and settings); a sweep started again on the same ``out`` skips the
        finished blocks and returns what an uninterrupted sweep returns, bit for bit; one with
        another grid, block, run, summary, data or batch_size is refused (``ValueError``). :func:`load_sweep`
        reads the store back. In a multi-process job the blocks are dealt to the processes (block b
        to process b mod P, on its own devices), each writes its own, and every process returns the
        whole result (read back from ``out`` after all are done).
      progress: ``progress(blocks_done, blocks_total, elapsed_s, left_s)`` after every block (this
        process's blocks; blocks found finished in ``out`` count as done): ``left_s`` is the estimated
        time left, the mean time of the blocks computed in this call times the blocks still to do (None
        while only finished blocks were read back; the first block's compile counts in the mean, so the
        first estimates run high). :func:`print_progress` prints it.
      fast_compile: compile with :data:`rnnjax.sharding.FAST_COMPILE` (for smoke-test sizes).
      batch_size: runs vectorised at once on each device (:func:`rnnjax.sharding.sharded_vmap`): None
        (default) vmaps each device's share of a block; k runs them k at a time inside the same
        program (``jax.lax.map``), 1 one after another (each run then equals its own jitted run bit
        for bit). Other values give other float32 round-off, which a long training run can amplify.
        Which is faster depends on the run: ``benchmarks/bench_sweeps.py`` measured 1 faster for a
        user's cell of H = 50 differentiated by ``jax.grad`` (64 runs x 200 steps on 2 CPU cores),
        and the default faster for the vanilla cell's hand BPTT; small cells gain from the batch.
      **axes: the grid: 1-D arrays of values by name. Integer axes (seeds) stay integers; floats
        become JAX's default float (float32). The names ``devices``, ``block``, ``summary``, ``out``,
        ``progress``, ``fast_compile`` and ``batch_size`` are taken by the options above.

    Returns:
      ``run``'s (or ``summary``'s) pytree of NumPy arrays, each with leading axes (len(axis) for
      each axis in order). Runs that go non-finite stay as they are (their own results say so, e.g.
      a training history's ``finite`` flags); nothing else is affected by them.
    """
    if not callable(run):
        raise ValueError(f"run must be a function run(**point) -> pytree, got {type(run).__name__}")
    for name, fn in (("summary", summary), ("progress", progress)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name} must be a function or None, got {type(fn).__name__}")
    if block is not None:
        check_positive_int("block", block)
    if batch_size is not None:
        check_positive_int("batch_size", batch_size)
    axes = _check_axes(axes)
    names, lengths = tuple(axes), tuple(a.size for a in axes.values())
    N = int(np.prod(lengths))
    flat = [values[i] for values, i in zip(axes.values(), np.indices(lengths).reshape(len(lengths), -1),
                                            strict=True)]  # point j of the flat grid, axis-major order
    static, arrays = _split_run(run)
    point = _Point(static, names, summary)
    avals = tuple((tuple(np.shape(a)), jnp.result_type(a)) for a in [*(v[:1].reshape(()) for v in flat), *arrays])
    try:
        hash(point)
    except TypeError:
        raise ValueError("run (and summary) must be hashable: a function, or a callable NamedTuple of hashable "
                         "fields; pass arrays through jax.tree_util.Partial") from None
    struct, per_run = _plan(point, avals)
    devices = list(jax.devices() if devices is None else devices)
    deal = out is not None and jax.process_count() > 1  # blocks dealt to processes, each on its own devices
    if deal:
        devices = [d for d in devices if d.process_index == jax.process_index()]
    B = min(block or default_block(per_run, len(devices)), N)
    n_blocks = -(-N // B)
    mine = [b for b in range(n_blocks) if not deal or b % jax.process_count() == jax.process_index()]
    leaves_struct, treedef = jax.tree.flatten(struct)
    leaf_names = _leaf_names(struct)
    if not leaves_struct:
        raise ValueError(f"run (or summary) must return at least one array, got {struct}")
    results = [np.empty((n_blocks * B, *s.shape), s.dtype) for s in leaves_struct]
    if out is not None:
        out = Path(out)
        settings = {"format": STORE_FORMAT, "axes": [{"name": k, "dtype": str(v.dtype), "values": v.tolist()}
                                                     for k, v in axes.items()],
                    "runs": N, "block": B, "blocks": n_blocks, "run": _describe(static),
                    "summary": _describe(summary), "data_sha256": _digest(arrays),
                    "results": {k: {"shape": list(s.shape), "dtype": str(s.dtype)}
                                for k, s in zip(leaf_names, leaves_struct, strict=True)}}
        if batch_size is not None:  # round-off may follow it: a resumed store keeps the one it began with
            settings["batch_size"] = batch_size
        _open_store(out, settings)
    mapped = sharded_vmap(point, devices=devices, shared=len(arrays), fast_compile=fast_compile,
                          batch_size=batch_size)
    start, done, computed, computing_s = time.perf_counter(), 0, 0, 0.0

    def fill(b, block_leaves):
        for dest, leaf in zip(results, block_leaves, strict=True):
            dest[b * B:(b + 1) * B] = leaf

    for b in mine:
        path = None if out is None else _block_file(out, b)
        if path is not None and path.exists():  # finished before a restart
            with np.load(path) as f:
                fill(b, [f[k] for k in leaf_names])
        else:
            t = time.perf_counter()
            idx = np.minimum(np.arange(b * B, (b + 1) * B), N - 1)  # the last block repeats its last run
            got = [np.asarray(leaf) for leaf in jax.tree.leaves(mapped(*(v[idx] for v in flat), *arrays))]
            fill(b, got)
            if path is not None:
                flags = {NONFINITE: _nonfinite(got)}  # reported beside the values, never silently NaN
                _write_atomic(path, lambda f, got=got, flags=flags: np.savez(
                    f, **dict(zip(leaf_names, got, strict=True)), **flags))
            computed, computing_s = computed + 1, computing_s + time.perf_counter() - t
        done += 1
        if progress is not None:
            left = len(mine) - done
            progress(done, len(mine), time.perf_counter() - start,
                     0.0 if left == 0 else computing_s / computed * left if computed else None)
    if deal:  # every process waits for all blocks, then reads the others' from out
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"rnnjax.sweep {out}")
        for b in sorted(set(range(n_blocks)) - set(mine)):
            with np.load(_block_file(out, b)) as f:
                fill(b, [f[k] for k in leaf_names])
    return treedef.unflatten([r[:N].reshape(lengths + r.shape[1:]) for r in results])


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
                spec_norm: str = "lanczos", devices: Sequence | None = None, fast_compile: bool = False,
                summary: Callable | None = None, block: int | None = None, out=None,
                progress: Callable | None = None, batch_size: int | None = None):
    """Initialise and train one vanilla RNN per (rho, seed), all in one jitted, vmapped program.

    Run (rho, seed) starts from :func:`rnnjax.init_rnn` with ``PRNGKey(seed)`` and ``rho`` (so the
    rhos of a seed share one random matrix) and is trained by :func:`rnnjax.train` on ``xs``,
    ``targets`` (see there: (N, T, D), item s mod N at step s). ``fast_compile`` trades run time
    for compile time (see :func:`sweep`; for smoke tests). ``output_size`` defaults to the
    input width D for ``loss="xent"`` (next-symbol prediction) and to ``targets.shape[-1]`` otherwise.
    ``summary``, ``block``, ``out``, ``progress`` and ``batch_size`` are :func:`sweep`'s (its default block,
    no store, the runs vmapped):
    ``summary=history_only`` keeps the histories alone (most of the memory of a large sweep is the final
    parameters); ``out=PATH`` streams the blocks to disk and resumes a killed sweep.

    Returns:
      ``(params, history)`` with leading axes (R, S): final :class:`RNNParams` and
      :class:`rnnjax.TrainHistory` of (R, S, num_steps) NumPy arrays (one :func:`sweep` over rho x seed);
      with ``summary``, what it returns per run, leading axes (R, S) (``(None, history)`` for
      :func:`history_only`). A run that goes non-finite halts alone (its ``history.finite`` turns
      False); the others are unaffected.
    """
    rhos, seeds = _rho_seed(rhos, seeds, recurrent_init)
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
    return sweep(Partial(one, xs=xs, targets=targets), rho=rhos, seed=seeds, devices=devices,
                 fast_compile=fast_compile, summary=summary, block=block, out=out, progress=progress,
                 batch_size=batch_size)


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
    :func:`sweep` (for small smoke-test sizes; ~10x slower to run). NumPy arrays; entries
    can be NaN where the forward state overflowed (e.g. ReLU with a large rho and a long L).
    """
    rhos, seeds = _rho_seed(rhos, seeds, recurrent_init)
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
    out = sweep(Partial(one, xs=xs, targets=targets), rho=rhos, seed=seeds, devices=devices,
                fast_compile=fast_compile)
    rho_flat, seed_flat = grid(rhos, seeds)
    norms = _weight_norms(jnp.asarray(rho_flat, jnp.float32), jnp.asarray(seed_flat), init=init)  # LAPACK: apart
    out.update({k: np.asarray(v).reshape(len(rhos), len(seeds)) for k, v in norms.items()})
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
    rhos, seeds = _rho_seed(rhos, seeds, recurrent_init)
    xs, targets = jnp.asarray(xs), jnp.asarray(targets)
    if xs.ndim != 3 or targets.shape != xs.shape[:2]:
        raise ValueError(f"xs must be segments (M, T, D) and targets (M, T), got {tuple(xs.shape)} and "
                         f"{tuple(targets.shape)}")
    init = _Init((xs.shape[-1], hidden_size, output_size), recurrent_init, _opt_float(input_std),
                 _opt_float(output_std))
    one = _LagSpectra(init, activation, loss, float(get_activation(activation).gamma))
    out = sweep(Partial(one, xs=xs, targets=targets), rho=rhos, seed=seeds, devices=devices,
                fast_compile=fast_compile)
    R = len(rhos)
    return {"log_profile": out["log_profile"].reshape(R, -1, xs.shape[1]).mean(1),  # over seeds x segments
            "log_sigma": out["log_sigma"].reshape(R, -1, xs.shape[1], hidden_size).mean(1),
            "log_bound": out["log_bound"].mean(1)}


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
    rhos, seeds = _rho_seed(rhos, seeds, recurrent_init)
    xs = jnp.asarray(xs)
    check_lyapunov_args(jnp.zeros((hidden_size,), xs.dtype), xs, warmup=warmup, num=num, reorth_every=1)
    init = _Init((xs.shape[-1], hidden_size, output_size), recurrent_init, _opt_float(input_std),
                 _opt_float(output_std))
    return sweep(Partial(_Lyapunov(init, activation, warmup, num), xs=xs), rho=rhos, seed=seeds, devices=devices,
                 fast_compile=fast_compile)


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
