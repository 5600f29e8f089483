"""Shared fixtures. Tests needing float64 request ``x64`` (turns jax_enable_x64 on, then back off)."""

import os

os.environ["RNNJAX_NO_COMPILE_CACHE"] = "1"  # tests never write to a user's compilation cache (rnnjax.devices)

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def x64():
    """Run the test in float64: ``jax.config.update("jax_enable_x64", True)``, restored afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture(scope="session")
def quick_runs(tmp_path_factory):
    """``quick_runs(name) -> (folder, metrics)``: one experiment's quick run, made once per session by the
    main job's own ``run_stage`` into a shared ``runs/`` (``quick_runs.root``), with umask 022.

    Each experiment runs only when a test first asks for it, so a test module pays for its own
    experiment alone, and the whole suite for each experiment once (the results page reuses them).
    """
    import json
    import os

    from experiments.reproduce import Stage, run_stage

    args = {"stock_forecast": ("--quick", "--seeds", "2"),
            "stock_variants": ("--quick", "--seeds", "1"),
            "gradient_stability": ("--quick", "--rhos", "0.9", "0.99", "1.2", "60"),  # rho 60 goes non-finite
            "gradient_spectra": ("--quick",),
            "remedies": ("--quick", "--models", "rnn_tanh", "lstm"),
            "flossing": ("--quick",)}
    root = tmp_path_factory.mktemp("main_job") / "runs"
    root.mkdir()
    done = {}

    def get(name: str):
        if name not in done:
            mask = os.umask(0o022)
            try:
                run_stage(Stage(name, name, args[name], ()), root, quick=False)
            finally:
                os.umask(mask)
            done[name] = json.loads((root / name / "metrics.json").read_text())
        return root / name, done[name]

    get.root = root
    get.names = tuple(args)
    return get
