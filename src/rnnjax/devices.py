"""Ask XLA for one CPU device per core, so sweeps can shard over them. Imports nothing from JAX.

XLA reads ``XLA_FLAGS`` when JAX starts its CPU backend (the first computation or
``jax.devices()``), so :func:`use_host_devices` must run before that -- at the top of an
experiment's or benchmark's ``main``, ahead of any JAX work. Importing ``rnnjax`` alone does not
start the backend, so ``from rnnjax.devices import use_host_devices`` followed by the call is soon
enough. If the backend is already up, the call changes nothing and says so.
"""

from __future__ import annotations

import os
import re
import sys

FLAG = "--xla_force_host_platform_device_count"


def backend_started() -> bool:
    """True when JAX has already started a backend in this process (then XLA_FLAGS is fixed)."""
    bridge = sys.modules.get("jax._src.xla_bridge")
    return bool(getattr(bridge, "_backends", None))


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
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}={count}".strip()
    return count
