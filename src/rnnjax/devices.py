"""Process-level JAX set-up, before JAX starts its backend. Imports nothing from JAX at module level.

* :func:`use_host_devices` -- one XLA CPU device per core, so sweeps can shard over them;
* :func:`init_distributed` -- join a multi-process JAX job (several processes on one machine, or
  hosts of a cluster), so a sweep runs as one program over every device of every process;
* :func:`use_optimization_level` -- XLA's LLVM optimisation level for every program of the process;
* :func:`use_fusion_emitters` -- XLA:CPU's newer (MLIR) fusion emitters on or off for every program;
* :func:`use_compilation_cache` -- JAX's persistent compilation cache, so a repeated run (the
  experiments, the main job) loads its compiled programs from disk instead of compiling them again;
* :func:`environment` -- what a run's numbers depend on besides its inputs (versions, the CPU's
  vector instructions, XLA flags), recorded beside results so two runs can be compared.

XLA reads ``XLA_FLAGS`` when JAX starts its CPU backend (the first computation or
``jax.devices()``), so these must run before that -- at the top of an experiment's or benchmark's
``main``, ahead of any JAX work. Importing ``rnnjax`` alone does not start the backend, so
``from rnnjax.devices import use_host_devices`` followed by the call is soon enough. If the backend
is already up, :func:`use_host_devices` changes nothing and says so.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

FLAG = "--xla_force_host_platform_device_count"


def backend_started() -> bool:
    """True when JAX has already started a backend in this process (then XLA_FLAGS is fixed)."""
    bridge = sys.modules.get("jax._src.xla_bridge")
    return bool(getattr(bridge, "_backends", None))


def _set_flag(name: str, value) -> bool:
    """Add ``--name=value`` to ``XLA_FLAGS`` unless the user set ``name`` there or the backend is up."""
    flags = os.environ.get("XLA_FLAGS", "")
    if backend_started() or re.search(rf"--{name}=", flags):
        return False
    os.environ["XLA_FLAGS"] = f"{flags} --{name}={value}".strip()
    return True


def use_host_devices(count: int | None = None) -> int:
    """Set ``XLA_FLAGS=--xla_force_host_platform_device_count=<count>`` (default: ``os.cpu_count()``).

    An existing device-count flag in ``XLA_FLAGS`` wins (the user's choice); other flags are kept.
    Returns the host-device count that will be in effect, or 0 when JAX's backend had already
    started (nothing changed; ``len(jax.devices())`` then tells what there is).
    """
    if count is None:
        count = os.cpu_count() or 1
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    if backend_started():
        return 0
    flags = os.environ.get("XLA_FLAGS", "")
    found = re.search(FLAG + r"=(\d+)", flags)
    if found:
        return int(found.group(1))
    _set_flag(FLAG.lstrip("-"), count)
    return count


OPTIMIZATION_LEVEL = 1  # measured: the training sweep compiles 2x faster than at XLA's default (3), runs as fast


def use_optimization_level(level: int = OPTIMIZATION_LEVEL) -> bool:
    """Compile every program of this process at XLA backend optimisation level ``level`` (0-3).

    XLA:CPU spends most of a program's compile time in LLVM's optimisation passes. Measured on the
    2-core development machine: level 1 compiles Experiment 2's 64-rho training sweep in 2.6 s of CPU
    instead of 5.2 s at the default level 3, and runs it as fast (0.87 s either way); Experiment 1's
    4-seed, 300-epoch program compiled in 5.0-5.5 s instead of 6.3-8.5 s and trained ~8% slower.
    Right for the experiments, whose programs run for seconds; a user training for hours keeps the
    default. A level in the user's ``XLA_FLAGS`` wins. Returns False when nothing changed (the
    user's flag, or the backend already started), True otherwise.
    """
    if isinstance(level, bool) or level not in (0, 1, 2, 3):
        raise ValueError(f"level must be 0, 1, 2 or 3, got {level!r}")
    return _set_flag("xla_backend_optimization_level", level)


def use_fusion_emitters(enabled: bool) -> bool:
    """Turn XLA:CPU's MLIR fusion emitters on or off for every program of this process
    (``--xla_cpu_use_fusion_emitters``; XLA's default is on).

    Off, XLA:CPU generates each fused loop with its older LLVM IR emitters, which compile small programs
    2-4x faster: measured on the 2-core development machine (jaxlib 0.10.2, level 0), 93 programs of three
    test modules in 4-5 s of XLA compile instead of 9-20 s; the quick gradient-analysis run in 14.6 s
    of CPU instead of 24.0 s. Results agree to float32 round-off, not bit for bit (transcendental
    functions and summation orders are generated differently). The test suite turns them off; the
    experiments keep XLA's default. A setting in the user's ``XLA_FLAGS`` wins. Returns False when
    nothing changed (the user's flag, or the backend already started), True otherwise.
    """
    if not isinstance(enabled, bool):
        raise ValueError(f"enabled must be True or False, got {enabled!r}")
    return _set_flag("xla_cpu_use_fusion_emitters", str(enabled).lower())


NO_CACHE_ENV = "RNNJAX_NO_COMPILE_CACHE"  # set (to anything but "" or "0") to turn the compilation cache off


def compilation_cache_dir() -> Path:
    """Where :func:`use_compilation_cache` keeps compiled programs: ``$RNNJAX_CACHE/xla``, by default
    ``$XDG_CACHE_HOME/rnnjax/xla`` or ``~/.cache/rnnjax/xla`` (beside the Stooq data cache)."""
    root = os.environ.get("RNNJAX_CACHE")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rnnjax"
    return Path(root) / "xla"


def use_compilation_cache(path=None, *, min_compile_s: float = 0.5) -> Path | None:
    """Keep this process's compiled programs on disk (JAX's persistent compilation cache) and reuse them.

    A repeated run with the same programs, shapes, JAX version and flags then loads each program
    instead of compiling it (Experiment 2's training sweep: 10.9 s to its first result without, 2.2 s
    with). Only programs that took at least ``min_compile_s`` to compile are stored. ``path``
    defaults to :func:`compilation_cache_dir`; a ``JAX_COMPILATION_CACHE_DIR`` already in the
    environment wins, and then every cache setting is left as it is (the test suite sets its own).
    Off -- returns None and changes nothing -- when ``RNNJAX_NO_COMPILE_CACHE`` is set. The settings
    go both to the environment, which child processes inherit, and to ``jax.config`` when JAX is
    already imported.
    Returns the folder in use.
    """
    if os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):  # set up already (the user, a parent process): left alone
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    folder = Path(path or compilation_cache_dir())
    settings = {"jax_compilation_cache_dir": str(folder),
                "jax_persistent_cache_min_compile_time_secs": float(min_compile_s)}
    for name, value in settings.items():
        os.environ[name.upper()] = str(value)
    if "jax" in sys.modules:
        import jax

        for name, value in settings.items():
            jax.config.update(name, value)
    return folder


ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID = "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"


def init_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None, *, timeout_s: int = 300) -> int:
    """Join a multi-process JAX job: ``jax.distributed.initialize``, with CPU collectives by gloo.

    Every process of the job calls this first (before any JAX work), with the same
    ``coordinator_address`` ("host:port" of process 0, which serves it), the same ``num_processes``
    and its own ``process_id`` in 0..num_processes-1. Each defaults to the environment variable
    ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``. When none of the three
    is given anywhere this does nothing and returns 1 (one process); when only some are, JAX's own
    cluster detection (Slurm, Open MPI, TPU) fills in the rest. Afterwards ``jax.devices()`` lists
    every device of every process, and the :mod:`rnnjax.sweeps` functions shard over all of them.

    Returns the number of processes in the job. Raises ``ValueError`` for a malformed value and
    ``RuntimeError`` (from JAX) when the backend had already started.
    """
    coordinator_address = coordinator_address or os.environ.get(ENV_COORDINATOR) or None

    def number(value, env, name):
        value = os.environ.get(env) if value is None else value
        if value is None or value == "":
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an integer (argument or ${env}), got {value!r}") from None

    num_processes = number(num_processes, ENV_NUM_PROCESSES, "num_processes")
    process_id = number(process_id, ENV_PROCESS_ID, "process_id")
    if coordinator_address is None and num_processes is None and process_id is None:
        return 1
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must lie in [0, {num_processes}), got {process_id}")
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id, initialization_timeout=timeout_s)
    return jax.process_count()


# The CPU features that change which vector instructions XLA's CPU backend emits, and so the
# float32 rounding of its reductions and matrix products (Linux /proc/cpuinfo names).
CPU_FEATURES = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                "amx_tile")
NUMERIC_KEYS = ("jax", "jaxlib", "backend", "device_kind", "machine", "cpu_features", "xla_flags")


def _cpu() -> tuple[str, list[str]]:
    """The CPU's model name and which of :data:`CPU_FEATURES` it has (Linux; elsewhere the platform's name)."""
    import platform

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    have = set(flags.group(1).split()) if flags else set()
    return (model.group(1).strip() if model else platform.processor()), [f for f in CPU_FEATURES if f in have]


def environment() -> dict:
    """What a run's numbers depend on besides its inputs and seeds: a JSON-ready dict.

    Float32 training reproduces bit for bit on one machine, but XLA's CPU backend emits different
    vector instructions for different CPUs (AVX2 or AVX-512) and versions, which round reductions
    differently; a chaotic or long training run amplifies those last bits. :data:`NUMERIC_KEYS`
    are the entries that decide the numbers (:func:`same_numerics` compares them); ``cpu_model``,
    ``python``, ``numpy`` and ``devices`` are for the reader. Starts JAX's backend.
    """
    import platform

    import jax
    import jaxlib
    import numpy as np

    device = jax.devices()[0]
    model, features = _cpu()
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "backend": device.platform,
            "device_kind": device.device_kind, "devices": jax.device_count(), "machine": platform.machine(),
            "cpu_model": model, "cpu_features": features,
            "xla_flags": " ".join(sorted(f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(FLAG))),
            "python": platform.python_version(), "numpy": np.__version__}


def same_numerics(a: dict, b: dict) -> bool:
    """Whether two :func:`environment` records agree on every entry that decides the numbers."""
    return all(a.get(k) == b.get(k) for k in NUMERIC_KEYS)
