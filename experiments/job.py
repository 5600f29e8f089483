"""Process set-up shared by every experiment and the main job; call :func:`start` before any JAX work.

* one XLA CPU device per core (the sweeps shard over them), unless ``host_devices`` is False;
* XLA backend optimisation level 1 (:func:`rnnjax.devices.use_optimization_level`: half the compile
  time of these seconds-long programs at the same speed);
* JAX's persistent compilation cache under ``~/.cache/rnnjax/xla`` (:func:`rnnjax.devices.use_compilation_cache`),
  so a repeated run loads its programs instead of compiling them; ``RNNJAX_NO_COMPILE_CACHE=1`` turns
  it off.

All three go through the environment, so the main job's experiment processes inherit them.
"""

from __future__ import annotations

from rnnjax.devices import use_compilation_cache, use_host_devices, use_optimization_level


def start(devices: int | None = None, *, host_devices: bool = True) -> None:
    """Set up this process before JAX starts its backend (see the module docstring)."""
    if host_devices:
        use_host_devices(devices)
    use_optimization_level()
    use_compilation_cache()
