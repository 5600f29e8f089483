"""Shared fixtures and the suite's compile settings. Tests needing float64 request ``x64``.

Compiling is most of the suite's time (measured: ~70% of test_scan + test_analysis is XLA's backend
compile, ~800 programs, most of them single eager operations of ~30 ms each), so before JAX starts:

* XLA backend optimisation level 0 (20% less time than the default 3; the tests check numbers, not speed).
  A level in the user's ``XLA_FLAGS`` wins. The report tier's run (``quick_runs.report_tier``) keeps the
  job's own level 1: its Experiment 1 trains for seconds, faster there by more than it compiles slower.
* XLA:CPU's MLIR fusion emitters off (:func:`rnnjax.devices.use_fusion_emitters`): the older emitters
  compile the suite's small programs 2-4x faster (with this stop's test changes, the suite's compile seconds
  252 -> 109: ``benchmarks/results/2026-12-07_test_suite_profile*.txt``). Users
  and the experiments run XLA's default emitters; CI's main job runs them, and so does the four-device
  sharding test. ``XLA_FLAGS="--xla_cpu_use_fusion_emitters=true --xla_backend_optimization_level=3"``
  runs the whole suite on XLA's defaults (the user's flags win). :func:`job_env` passes the flags in
  effect to the processes a test starts as JAX jobs of their own.
* JAX's persistent compilation cache in ``.cache/xla-tests/`` of this checkout (git-ignored; ~30 MB),
  every program cached: a repeated run of the suite loads its programs instead of compiling
  them; the experiments the tests start as processes inherit it. Never the user's own cache.
  ``RNNJAX_NO_COMPILE_CACHE=1`` turns it off (a cold run, as on a fresh clone).
"""

import contextlib
import fcntl
import os
import re
import socket
from pathlib import Path

# XLA_FLAGS as the user set them, recorded by the first process that loads this file (pytest-xdist's controller):
# its workers inherit the suite's flags in XLA_FLAGS, and this record with them
USER_XLA_FLAGS = os.environ.setdefault("RNNJAX_SUITE_USER_XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
os.environ.pop("RNNJAX_PROGRESS_EVERY", None)  # a user's progress interval: the tests that need one set their own

if os.environ.get("RNNJAX_NO_COMPILE_CACHE", "") in ("", "0"):  # rnnjax.devices.NO_CACHE_ENV; before JAX loads
    for name, value in {"JAX_COMPILATION_CACHE_DIR": Path(__file__).resolve().parents[1] / ".cache" / "xla-tests",
                        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": 0,
                        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": 0}.items():
        os.environ.setdefault(name, str(value))  # the user's own settings win

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rnnjax.devices import use_fusion_emitters, use_optimization_level  # noqa: E402

use_optimization_level(0)  # before JAX starts its backend (importing jax does not start it)
use_fusion_emitters(False)


def job_env() -> dict:
    """The environment of a process a test starts as a JAX job of its own: ``os.environ`` without JAX's settings
    (no compile cache, no host-device count), on the CPU, with the XLA flags in effect here (the suite's, or the
    user's where they set them), so it compiles as this process does."""
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", "")).strip()
    return {k: v for k, v in os.environ.items() if not k.startswith(("XLA_FLAGS", "JAX_"))} | {
        "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a job's coordinator)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def numpy_params(init, *args, draw=np.zeros):
    """``init(key, *args)``'s pytree, its shapes and dtypes from ``jax.eval_shape`` (nothing runs), each leaf
    ``draw(shape)`` by NumPy (zeros by default) put on the device: parameters as test data, without the
    eager programs of an init (one or more per shape)."""
    shapes = jax.eval_shape(lambda: init(jax.random.PRNGKey(0), *args))
    return jax.tree.map(lambda s: jax.device_put(np.asarray(draw(s.shape)).astype(s.dtype)), shapes)


def zeros(*shape, dtype=np.float32):
    """Zeros of ``shape`` on the device, put from NumPy (``jnp.zeros`` compiles an eager program per shape)."""
    return jax.device_put(np.zeros(shape, dtype))


def numpy_rnn(rng, d: int, h: int, o: int, *, rho=1.0, dtype=np.float64, orthogonal=False, input_scale=1.0):
    """``init_rnn``'s model drawn by NumPy from ``rng`` (W_xh, W, W_ho in that order): W_xh ~ N(0, std 1/sqrt(D))
    times ``input_scale``, W_hh = rho W with W ~ N(0, std 1/sqrt(H)) -- or rho Q, Q Haar-orthogonal (a
    Gaussian's QR with R's diagonal signs fixed, Mezzadri 2007) -- W_ho ~ N(0, std 1/sqrt(H)), zero biases.
    NumPy arrays: parameters as test data, without an init's eager programs per shape."""
    from rnnjax.cells import RNNParams

    W_xh, W, W_ho = (rng.standard_normal(s) for s in ((d, h), (h, h), (h, o)))
    if orthogonal:
        q, r = np.linalg.qr(W)
        W = q * np.sign(np.diag(r))
    else:
        W = W / np.sqrt(h)
    return RNNParams(W_xh=(input_scale * W_xh / np.sqrt(d)).astype(dtype), W_hh=(rho * W).astype(dtype),
                     b_h=np.zeros(h, dtype), W_ho=(W_ho / np.sqrt(h)).astype(dtype), b_o=np.zeros(o, dtype))


# The suite's longest tests (each >= 7 s on 2026-12-07, most of them experiments run as processes) go first:
# pytest-xdist deals the collection out in order, so they start while the other worker takes the short ones and
# no worker is left running one of them at the end (xdist deals consecutive batches of ~70: these ~30 all go to
# the first worker's first batch, which the other worker balances). The report tier's run comes first.
LONGEST_FIRST = ("tests/test_reproduce.py::test_the_main_job_writes_a_page_true_to_its_json",
                 "tests/test_remedies.py::test_quick_run_writes_everything",
                 "tests/test_distributed.py::", "tests/test_interrupt.py::",
                 "tests/test_sweeps.py::test_sharded_equals_unsharded_on_four_host_devices",
                 "tests/test_flossing_experiment.py::test_quick_run_writes_everything",
                 "tests/test_tutorial.py::test_tutorial_code_runs",
                 "tests/test_cli.py::",  # together, in one worker's first batch: its module fixture is made once
                 "tests/test_readme_sweep.py::", "tests/test_reproduce.py::test_a_run_killed_mid_write")


def pytest_collection_modifyitems(config, items):
    """Move :data:`LONGEST_FIRST`'s tests to the front, in its order; the rest keep theirs."""
    first = lambda item: next((i for i, p in enumerate(LONGEST_FIRST) if item.nodeid.startswith(p)), len(LONGEST_FIRST))
    items.sort(key=first)


@pytest.fixture
def x64():
    """Run the test in float64: ``jax.config.update("jax_enable_x64", True)``, restored afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@contextlib.contextmanager
def shared_lock(path: Path, wait: bool = True):
    """An exclusive lock on ``path`` (``fcntl.flock``), held across pytest-xdist's worker processes; yields
    True. With ``wait=False`` it yields False at once, holding nothing, while another process holds it."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def quick_runs(tmp_path_factory):
    """``quick_runs(name) -> (folder, metrics)``: one experiment's quick run, made once by the main job's own
    ``run_stage`` into a shared ``runs/`` (``quick_runs.root``), with umask 022; ``quick_runs.once(name)``
    is a lock for other work on that folder that must happen once.

    Each experiment runs only when a test first asks for it, so a test module pays for its own
    experiment (those of the report tier: for the tier's whole run), and the whole suite for each
    experiment once (the results page reuses them). Under
    pytest-xdist (``-n``) the folder is shared by the workers (beside their own temporary folders) and
    each experiment is run by whichever worker asks first while the others wait for it (a file lock).

    ``quick_runs.report_tier()`` is ``reproduce --quick`` run once as its own process (the report tier's
    test); an experiment asked for here with the very arguments that run gave it (``gradient_spectra``)
    is copied from it rather than run a second time.
    """
    import json
    import shutil
    import subprocess
    import sys

    from experiments.reproduce import REPORT_TIER, STAGES, Stage, run_stage

    args = {"stock_forecast": ("--quick",),
            "stock_variants": ("--quick", "--seeds", "1"),
            "gradient_stability": ("--quick", "--rhos", "0.9", "0.99", "1.2", "60"),  # rho 60 goes non-finite
            "gradient_spectra": ("--quick",),
            "remedies": ("--quick", "--models", "rnn_tanh", "lstm"),
            "flossing": ("--quick",)}
    # made by the report tier's run (report_tier below) with these very arguments, and copied from it
    reused = {s.name for s in STAGES if s.name in REPORT_TIER and args[s.name] == s.quick_args}
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if "PYTEST_XDIST_WORKER" in os.environ else base) / "main_job"
    root = shared / "runs"
    root.mkdir(parents=True, exist_ok=True)
    done = {}

    def once(name: str, wait: bool = True):
        return shared_lock(shared / f"{name}.lock", wait)

    def report_tier() -> tuple[Path, dict]:
        """``python -m experiments.reproduce --quick`` (the report tier) as a user runs it, once, into a shared
        folder: ``(its --out, {"returncode", "stdout", "stderr"})``."""
        out, record = shared / "report_tier", shared / "report_tier.json"
        with once("report_tier"):
            if not record.is_file():
                from test_cli import env

                tier = env()  # the job's own XLA level (1), not the suite's 0: its Experiment 1 trains for seconds
                if "--xla_backend_optimization_level" not in USER_XLA_FLAGS:  # (the tier 30 -> 25 s of CPU, its
                    # Experiment 1 13 -> 8 s, measured alone); a level the user set stays
                    tier["XLA_FLAGS"] = re.sub(r"--xla_backend_optimization_level=\d+", "", tier["XLA_FLAGS"]).strip()
                run = subprocess.run([sys.executable, "-m", "experiments.reproduce", "--quick", "--out", str(out)],
                                     env=tier, capture_output=True, text=True, timeout=600, umask=0o022)
                record.write_text(json.dumps({"returncode": run.returncode, "stdout": run.stdout,
                                              "stderr": run.stderr}))
        return out, json.loads(record.read_text())

    def get(name: str, wait: bool = True):
        if name not in done:
            with once(name, wait) as held:
                if not held:  # another worker is making it (wait=False)
                    return None
                if not (root / name / "metrics.json").is_file():
                    if name in reused:  # the report tier's run of it, with the same arguments: not run twice
                        tier, run = report_tier()
                        assert run["returncode"] == 0, run["stderr"][-3000:]
                        shutil.copytree(tier / name, root / name)
                    else:
                        mask = os.umask(0o022)
                        try:
                            run_stage(Stage(name, name, args[name], ()), root, quick=False)
                        finally:
                            os.umask(mask)
            done[name] = json.loads((root / name / "metrics.json").read_text())
        return root / name, done[name]

    def every() -> None:
        """Every experiment's quick run, made by the workers that ask together: each makes the ones no other
        worker is making (the costliest first) before it waits for the rest."""
        first = ("flossing", "gradient_spectra", "remedies", "stock_variants", "gradient_stability", "stock_forecast")
        assert sorted(first) == sorted(args)
        for name in first:
            get(name, wait=False)
        for name in first:
            get(name)

    get.root, get.names, get.once, get.report_tier, get.every = root, tuple(args), once, report_tier, every
    return get
