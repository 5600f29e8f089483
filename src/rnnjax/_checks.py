"""Input validation shared by the library: every message names the parameter and what was expected."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Real


def check_choice(param: str, value, allowed: Iterable[str]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed`` (listed in the message)."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {param} {value!r}; expected one of {sorted(allowed)}")


def check_positive_int(param: str, value) -> None:
    """Raise ``ValueError`` unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{param} must be a positive integer, got {value!r}")


def check_positive(param: str, value) -> None:
    """Raise ``ValueError`` if ``value`` is a concrete number <= 0 (traced values pass through)."""
    if isinstance(value, Real) and not value > 0:
        raise ValueError(f"{param} must be > 0, got {value!r}")


def check_sizes(**sizes) -> None:
    """:func:`check_positive_int` for each keyword, e.g. ``check_sizes(input_size=D, hidden_size=H)``."""
    for param, value in sizes.items():
        check_positive_int(param, value)
