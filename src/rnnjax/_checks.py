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


def _concrete(value):
    """``value`` as a NumPy array when it is concrete (a number, list, NumPy or JAX array), else None (traced)."""
    import jax
    import numpy as np

    if isinstance(value, jax.core.Tracer):
        return None
    try:
        return np.asarray(value)
    except (TypeError, ValueError):
        return None


def check_positive_finite(param: str, value) -> None:
    """Raise ``ValueError`` unless every entry of a concrete ``value`` is a finite number > 0 (arrays too)."""
    import numpy as np

    arr = _concrete(value)
    if arr is None:
        return
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{param} must be a number or an array of numbers, got {value!r}")
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        where = "" if arr.ndim == 0 else f" at index {tuple(int(i) for i in np.argwhere(bad)[0])}"
        raise ValueError(f"{param} must be finite and > 0 everywhere, got {float(arr[bad].ravel()[0])!r}{where}")


def check_step_size(param: str, value, dtype) -> None:
    """Raise ``ValueError`` unless a concrete ``value`` is finite, > 0, and stays so in ``dtype`` (no 0 or inf)."""
    import numpy as np

    check_positive_finite(param, value)
    arr = _concrete(value)
    if arr is None:
        return
    with np.errstate(over="ignore", under="ignore"):
        cast = arr.astype(dtype)
    if not (np.isfinite(cast) & (cast > 0)).all():
        raise ValueError(f"{param} {arr.ravel()[0]!r} rounds to {cast.ravel()[0]} in {np.dtype(dtype).name}, "
                         f"the parameters' dtype; use a value that {np.dtype(dtype).name} can hold")


def check_array(param: str, value) -> None:
    """Raise ``ValueError`` naming ``param`` unless ``value`` is an array (JAX or NumPy), not a list or scalar."""
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise ValueError(f"{param} must be an array (jax.numpy or NumPy), got {type(value).__name__}; "
                         f"convert it with jnp.asarray({param})")


def check_class_labels(param: str, targets, n_classes: int) -> None:
    """Raise ``ValueError`` unless every concrete label of ``targets`` lies in 0..n_classes-1."""
    arr = _concrete(targets)
    if arr is None or arr.size == 0:
        return
    bad = (arr < 0) | (arr >= n_classes)
    if bad.any():
        import numpy as np

        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{param} holds class label {int(arr[where])} at index {where}, outside 0..{n_classes - 1} "
                         f"(the output size O = {n_classes}); its labels range from {int(arr.min())} to "
                         f"{int(arr.max())}")
