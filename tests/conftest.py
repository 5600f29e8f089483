"""Shared fixtures and the suite's compile settings. Tests needing float64 request ``x64``.

Compiling is most of the suite's time (measured: ~70% of test_scan + test_analysis is XLA's backend
compile, ~800 programs, most of them single eager operations of ~30 ms each), so before JAX starts:

* XLA backend optimisation level 0 (20% less time than the default 3; the tests check numbers, not speed).
  A level in the user's ``XLA_FLAGS`` wins.
* JAX's persistent compilation cache in ``.cache/xla-tests/`` of this checkout (git-ignored; ~30 MB),
  every program cached: a repeated run of the suite loads its programs instead of compiling
  them; the experiments the tests start as processes inherit it. Never the user's own cache.
  ``RNNJAX_NO_COMPILE_CACHE=1`` turns it off (a cold run, as on a fresh clone).
"""

import contextlib
import fcntl
import os
from pathlib import Path

if os.environ.get("RNNJAX_NO_COMPILE_CACHE", "") in ("", "0"):  # rnnjax.devices.NO_CACHE_ENV; before JAX loads
    for name, value in {"JAX_COMPILATION_CACHE_DIR": Path(__file__).resolve().parents[1] / ".cache" / "xla-tests",
                        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": 0,
                        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": 0}.items():
        os.environ.setdefault(name, str(value))  # the user's own settings win

import jax  # noqa: E402
import pytest  # noqa: E402

from rnnjax.devices import use_optimization_level  # noqa: E402

use_optimization_level(0)  # before JAX starts its backend (importing jax does not start it)


@pytest.fixture
def x64():
    """Run the test in float64: ``jax.config.update("jax_enable_x64", True)``, restored afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@contextlib.contextmanager
def shared_lock(path: Path):
    """An exclusive lock on ``path`` (``fcntl.flock``), held across pytest-xdist's worker processes."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def quick_runs(tmp_path_factory):
    """``quick_runs(name) -> (folder, metrics)``: one experiment's quick run, made once by the main job's own
    ``run_stage`` into a shared ``runs/`` (``quick_runs.root``), with umask 022; ``quick_runs.once(name)``
    is a lock for other work on that folder that must happen once.

    Each experiment runs only when a test first asks for it, so a test module pays for its own
    experiment alone, and the whole suite for each experiment once (the results page reuses them). Under
    pytest-xdist (``-n``) the folder is shared by the workers (beside their own temporary folders) and
    each experiment is run by whichever worker asks first while the others wait for it (a file lock).
    """
    import json

    from experiments.reproduce import Stage, run_stage

    args = {"stock_forecast": ("--quick", "--seeds", "2"),
            "stock_variants": ("--quick", "--seeds", "1"),
            "gradient_stability": ("--quick", "--rhos", "0.9", "0.99", "1.2", "60"),  # rho 60 goes non-finite
            "gradient_spectra": ("--quick",),
            "remedies": ("--quick", "--models", "rnn_tanh", "lstm"),
            "flossing": ("--quick",)}
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if "PYTEST_XDIST_WORKER" in os.environ else base) / "main_job"
    root = shared / "runs"
    root.mkdir(parents=True, exist_ok=True)
    done = {}

    def once(name: str):
        return shared_lock(shared / f"{name}.lock")

    def get(name: str):
        if name not in done:
            with once(name):
                if not (root / name / "metrics.json").is_file():
                    mask = os.umask(0o022)
                    try:
                        run_stage(Stage(name, name, args[name], ()), root, quick=False)
                    finally:
                        os.umask(mask)
            done[name] = json.loads((root / name / "metrics.json").read_text())
        return root / name, done[name]

    get.root, get.names, get.once = root, tuple(args), once
    return get
