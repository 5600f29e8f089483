"""Shared fixtures. Tests needing float64 request ``x64`` (turns jax_enable_x64 on, then back off)."""

import jax
import pytest


@pytest.fixture
def x64():
    """Run the test in float64: ``jax.config.update("jax_enable_x64", True)``, restored afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)
