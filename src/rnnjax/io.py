"""Atomic, NaN-refusing writers for results: a file is either complete or absent, never half-written.

Every writer goes through :func:`atomic_write_bytes` (a temporary file in the same folder, fsync,
then ``os.replace``), so an interrupted run never leaves a partial JSON that a later reader
mistakes for a complete one, and a failed write never replaces a good file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np


def finite_stat(values, reduce=np.median) -> float | None:
    """``reduce`` (``np.median``, ``np.min``, ``np.max``, ...) of the finite entries of ``values``, as a float, or
    None when there are none: a summary these writers can save (they refuse NaN)."""
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    return float(reduce(v)) if v.size else None


class NonFiniteResultError(ValueError):
    """A result to be saved holds NaN or infinity; the message says where."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would create it, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _to_builtin(obj, where: str):
    """Convert numpy/JAX scalars and arrays to JSON types, refusing non-finite floats."""
    if isinstance(obj, dict):
        return {str(k): _to_builtin(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_builtin(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if hasattr(obj, "__array__") and not isinstance(obj, (str, bytes)):
        arr = np.asarray(obj)
        return _to_builtin(arr.tolist() if arr.ndim else arr.item(), where)
    if isinstance(obj, float) and not math.isfinite(obj):
        raise NonFiniteResultError(f"refusing to save non-finite value {obj} at {where}")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path, obj) -> Path:
    """Save ``obj`` as indented JSON, atomically; raises :class:`NonFiniteResultError` on NaN/inf."""
    return atomic_write_text(path, json.dumps(_to_builtin(obj, "$"), indent=2, allow_nan=False) + "\n")


def write_csv(path, frame) -> Path:
    """Save a pandas DataFrame as CSV (no index), atomically; refuses NaN/inf in numeric columns."""
    numeric = frame.select_dtypes(include="number")
    bad = ~np.isfinite(numeric.to_numpy(dtype=float))
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise NonFiniteResultError(f"refusing to save non-finite value in {Path(path).name}: "
                                   f"column {numeric.columns[col]!r}, row {row}")
    return atomic_write_text(path, frame.to_csv(index=False))
