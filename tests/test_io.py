"""The result writers: complete-or-absent files, NaN/inf refused with the place named, types converted."""

import json
import math
import os

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from rnnjax.io import NonFiniteResultError, atomic_write_bytes, atomic_write_text, finite_stat, write_csv, write_json


def test_atomic_write_creates_parents_and_leaves_no_temporary(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "b" / "out.txt", "héllo\n")
    assert path.read_bytes() == "héllo\n".encode()
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.txt"]


def test_a_failed_replace_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    path = atomic_write_bytes(tmp_path / "r.bin", b"old")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.bin"]


def test_a_result_that_cannot_be_serialised_leaves_the_old_file(tmp_path):
    path = write_json(tmp_path / "m.json", {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_write_json_converts_numpy_and_jax_values(tmp_path):
    obj = {"i": np.int64(3), "f": np.float32(0.5), "arr": np.arange(3), "jax": jnp.array([1.5, 2.5]),
           "scalar": jnp.float32(2.0), "nested": [{"path": tmp_path / "x"}], "none": None, "flag": True}
    data = json.loads(write_json(tmp_path / "m.json", obj).read_text())
    assert data == {"i": 3, "f": 0.5, "arr": [0, 1, 2], "jax": [1.5, 2.5], "scalar": 2.0,
                    "nested": [{"path": str(tmp_path / "x")}], "none": None, "flag": True}


@pytest.mark.parametrize(("obj", "where"), [
    ({"loss": float("nan")}, r"\$\.loss"),
    ({"runs": [{"grad": [1.0, math.inf]}]}, r"\$\.runs\[0\]\.grad\[1\]"),
    ({"history": np.array([0.1, np.nan])}, r"\$\.history\[1\]"),
    ({"value": jnp.float32(-jnp.inf)}, r"\$\.value"),
])
def test_write_json_refuses_non_finite_values_and_names_where(tmp_path, obj, where):
    with pytest.raises(NonFiniteResultError, match=r"refusing to save non-finite value .* at " + where):
        write_json(tmp_path / "m.json", obj)
    assert not (tmp_path / "m.json").exists()
    assert issubclass(NonFiniteResultError, ValueError)


def test_write_csv_round_trips_and_refuses_nan_naming_column_and_row(tmp_path):
    frame = pd.DataFrame({"step": [0, 1, 2], "loss": [0.5, 0.25, 0.125], "name": ["a", "b", "c"]})
    path = write_csv(tmp_path / "h.csv", frame)
    pd.testing.assert_frame_equal(pd.read_csv(path), frame)
    bad = frame.assign(loss=[0.5, np.nan, 0.1])
    with pytest.raises(NonFiniteResultError, match=r"h\.csv: column 'loss', row 1"):
        write_csv(path, bad)
    pd.testing.assert_frame_equal(pd.read_csv(path), frame)  # the good file is still there


def test_finite_stat_reduces_the_finite_entries_or_gives_none():
    v = [3.0, np.nan, 1.0, np.inf, 2.0, -np.inf]
    assert finite_stat(v) == 2.0 and finite_stat(v, np.min) == 1.0 and finite_stat(v, np.max) == 3.0
    assert finite_stat([[4.0, 1.0], [np.nan, 2.0]]) == 2.0  # any shape, flattened
    assert finite_stat([np.nan, np.inf]) is None and finite_stat([]) is None
    assert type(finite_stat(np.float32([1.5]))) is float
