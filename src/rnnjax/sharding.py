"""One function mapped over a leading axis, as one jitted program split over every device of every process.

:func:`sharded_vmap` maps a function over the leading axis of its arguments with ``jax.vmap`` and splits
that axis over a one-axis device mesh with ``jax.shard_map`` (no communication: each device runs its own
slice, padded to equal size). On one device it is plain ``jax.jit(jax.vmap(f))`` (with ``batch_size``,
``jax.jit`` of ``jax.lax.map`` in chunks). Each element runs the same per-element program either way, so
results equal the unsharded run up to float32 round-off (XLA may vectorise a different batch size
differently; bit-identical in the tests). For several CPU devices, call
:func:`rnnjax.devices.use_host_devices` before JAX starts; for several processes (hosts),
:func:`rnnjax.devices.init_distributed`. A program holding a CPU LAPACK call stays on one device per process
(see :data:`LAPACK_PRIMITIVES`). :func:`rnnjax.sweep` is built on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rnnjax._checks import check_positive_int

AXIS = "sweep"


def _mapped_impl(*args, fn, mesh, shared, batch_size=None):
    """vmap(fn) over the leading axis of all but the last ``shared`` args, shard_mapped over ``mesh``; with
    ``batch_size`` each device maps its slice ``batch_size`` elements at a time (``jax.lax.map``)."""
    k = len(args) - shared
    if batch_size is None:
        f = jax.vmap(fn, in_axes=(0,) * k + (None,) * shared)
    else:
        def f(*a):  # the slice in chunks of batch_size, one chunk after another (lax.map: vmap inside a scan)
            return jax.lax.map(lambda b: fn(*b, *a[k:]), a[:k], batch_size=None if batch_size == 1 else batch_size)
    if mesh is None:
        return f(*args)
    return jax.shard_map(f, mesh=mesh, in_specs=(P(AXIS),) * k + (P(),) * shared, out_specs=P(AXIS),
                         check_vma=False)(*args)  # per-element programs: nothing crosses devices


_STATIC = ("fn", "mesh", "shared", "batch_size")
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


@lru_cache(maxsize=256)
def _uses_lapack_cached(fn, avals: tuple, shared: int) -> bool:
    """:func:`uses_lapack` on abstract arguments, once per (fn, shapes and dtypes): a repeated call traces nothing."""
    return uses_lapack(fn, *(jax.ShapeDtypeStruct(s, d) for s, d in avals), shared=shared)


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
                 fast_compile: bool = False, batch_size: int | None = None) -> Callable:
    """``jax.vmap(fn)`` over the leading axis of the first arguments, that axis split over ``devices``.

    Args:
      fn: a per-element function ``fn(*batched, *shared_args) -> PyTree``. The compiled program is
        reused for equal ``fn`` (a module-level function, or a hashable callable such as a
        NamedTuple with ``__call__``) and equal shapes.
      devices: the devices to shard over; all of ``jax.devices()`` when None -- in a multi-process
        JAX job (:func:`rnnjax.devices.init_distributed`) every device of every process: each process
        computes the elements its devices hold, and every process gets all results (gathered with
        ``multihost_utils.process_allgather``). Every process must then make the same call with the
        same arguments. With one device the program is plain ``jax.jit(jax.vmap(fn))`` (no mesh;
        ``jax.lax.map`` with ``batch_size``) placed on that device.
      shared: how many trailing arguments every element shares (replicated, not mapped).
      fast_compile: compile with :data:`FAST_COMPILE` (seconds less per program, slower to run;
        for short analysis programs).
      batch_size: elements vectorised at once on each device: None (default) vmaps a device's whole
        slice; k maps it k elements at a time, one chunk after another (``jax.lax.map(batch_size=k)``;
        1: one element after another, each the unbatched program). The results differ by float32
        round-off (which a long training run can amplify); on CPU a small ``batch_size`` can be the
        faster one where one element's program already keeps a core busy (see :func:`rnnjax.sweep`).

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
    if batch_size is not None:
        check_positive_int("batch_size", batch_size)

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

    def lapack(args) -> bool:
        try:
            avals = tuple((tuple(jnp.shape(a)), jnp.result_type(a)) for a in args)
            return _uses_lapack_cached(fn, avals, shared)
        except TypeError:  # args that are not plain arrays, or an unhashable fn: trace this call's arguments
            return uses_lapack(fn, *args, shared=shared)

    def usable(args) -> list:
        if (len(devices) > 1 and devices[0].platform == "cpu" and _jaxlib_version() < LAPACK_DEADLOCK_BELOW
                and lapack(args)):
            return one_per_process(devices)
        return devices

    mapped = _mapped_fast_compile if fast_compile else _mapped

    def run(*args):
        n = check(args)
        devs = usable(args)
        if len(devs) == 1:
            return mapped(*jax.device_put(args, devs[0]), fn=fn, mesh=None, shared=shared, batch_size=batch_size)
        mesh = Mesh(np.array(devs), (AXIS,))
        batched, rest = args[: len(args) - shared], args[len(args) - shared :]
        idx = np.arange(-(-n // len(devs)) * len(devs)) % n  # pad to a multiple of the device count
        # global arrays: each process places the slices its own devices hold (every process passes the same args)
        batched = jax.tree.map(lambda a: _global(np.asarray(a)[idx], NamedSharding(mesh, P(AXIS))), batched)
        rest = jax.tree.map(lambda a: _global(np.asarray(a), NamedSharding(mesh, P())), rest)
        out = mapped(*batched, *rest, fn=fn, mesh=mesh, shared=shared, batch_size=batch_size)
        if not all(leaf.is_fully_addressable for leaf in jax.tree.leaves(out)):  # a multi-process job
            from jax.experimental import multihost_utils

            out = multihost_utils.process_allgather(out, tiled=True)  # every process gets every result
        return jax.tree.map(lambda a: a[:n], out)

    run.devices = lambda *args: (check(args), len(usable(args)))[1]
    return run
