"""rnnjax.devices: the XLA optimisation level, the fusion emitters and the persistent compilation cache settings
(no compiling)."""

import os

import jax
import pytest

from rnnjax import devices


def test_optimization_level_goes_to_xla_flags_unless_the_user_set_one(monkeypatch):
    monkeypatch.setattr(devices, "backend_started", lambda: False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert devices.use_optimization_level(1)
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=1"
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=3")
    assert not devices.use_optimization_level(1) and os.environ["XLA_FLAGS"] == "--xla_backend_optimization_level=3"
    with pytest.raises(ValueError, match="level must be 0, 1, 2 or 3, got 5"):
        devices.use_optimization_level(5)
    monkeypatch.setattr(devices, "backend_started", lambda: True)  # too late: nothing changes
    monkeypatch.setenv("XLA_FLAGS", "")
    assert not devices.use_optimization_level(1) and os.environ["XLA_FLAGS"] == ""


def test_fusion_emitters_go_to_xla_flags_unless_the_user_set_them(monkeypatch):
    monkeypatch.setattr(devices, "backend_started", lambda: False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    assert devices.use_fusion_emitters(False)
    assert os.environ["XLA_FLAGS"] == "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true")
    assert not devices.use_fusion_emitters(False) and os.environ["XLA_FLAGS"] == "--xla_cpu_use_fusion_emitters=true"
    with pytest.raises(ValueError, match="enabled must be True or False, got 0"):
        devices.use_fusion_emitters(0)
    monkeypatch.setattr(devices, "backend_started", lambda: True)  # too late: nothing changes
    monkeypatch.setenv("XLA_FLAGS", "")
    assert not devices.use_fusion_emitters(True) and os.environ["XLA_FLAGS"] == ""


def test_the_suite_sets_its_compile_flags_before_jax_starts():
    """conftest put the suite's flags in XLA_FLAGS, which the backend reads when it starts (the user's own win)."""
    assert "--xla_backend_optimization_level=" in os.environ["XLA_FLAGS"]
    assert "--xla_cpu_use_fusion_emitters=" in os.environ["XLA_FLAGS"]


def test_compilation_cache_folder_environment_and_opt_out(monkeypatch, tmp_path):
    updates = {}
    monkeypatch.setattr(jax.config, "update", lambda name, value: updates.__setitem__(name, value))
    for name in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, "")  # recorded, so the values set below are undone after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv(devices.NO_CACHE_ENV, "1")  # the opt-out
    assert devices.use_compilation_cache() is None and not updates
    monkeypatch.setenv(devices.NO_CACHE_ENV, "0")
    monkeypatch.setenv("RNNJAX_CACHE", str(tmp_path))
    assert devices.use_compilation_cache(min_compile_s=0.25) == tmp_path / "xla"
    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "xla")  # for child processes too
    assert updates == {"jax_compilation_cache_dir": str(tmp_path / "xla"),
                       "jax_persistent_cache_min_compile_time_secs": 0.25}
    monkeypatch.delenv("RNNJAX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert devices.compilation_cache_dir() == tmp_path / "xdg" / "rnnjax" / "xla"
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "mine"))  # the user's own folder wins,
    updates.clear()
    assert devices.use_compilation_cache() == tmp_path / "mine" and not updates  # with the user's settings


def test_environment_records_what_decides_the_numbers():
    import json

    env = devices.environment()
    assert json.loads(json.dumps(env)) == env  # JSON-ready
    assert env["jax"] == jax.__version__ and env["backend"] == jax.default_backend()
    assert set(env["cpu_features"]) <= set(devices.CPU_FEATURES) and "--xla_force_host" not in env["xla_flags"]
    assert devices.same_numerics(env, {**env, "devices": 99, "python": "x", "cpu_model": "y"})
    for key, other in (("cpu_features", ["avx512f"]), ("jaxlib", "0.0"), ("xla_flags", "--xla_cpu_x=1")):
        assert not devices.same_numerics(env, {**env, key: other})
