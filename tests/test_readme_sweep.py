"""The README's multi-process sweep snippet, run as written (two processes on 127.0.0.1) on a small grid
holding a run that diverges: the diverged run is reported with its step, and nothing is saved as NaN."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import free_port, job_env

README = Path(__file__).resolve().parents[1] / "README.md"


def _snippet() -> str:
    """The README's bash block that writes sweep.py and starts its two processes."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    (block,) = [b for b in blocks if "cat > sweep.py" in b]
    return block


def test_the_readme_sweep_runs_as_written_and_reports_a_diverged_run(tmp_path):
    block = _snippet()
    small = {"rhos, seeds = np.linspace(0.8, 1.3, 64), [0, 1, 2, 3]": "rhos, seeds = np.array([0.9, 60.0]), [0, 1]",
             "sizes = dict(hidden_size=50, num_steps=200)": "sizes = dict(hidden_size=6, num_steps=3)",
             "127.0.0.1:12355": f"127.0.0.1:{free_port()}",
             ".venv/bin/python sweep.py": f"{sys.executable} sweep.py"}
    for old, new in small.items():  # only sizes, the port and the interpreter change; the code runs as written
        assert block.count(old) == 1, old
        block = block.replace(old, new)
    env = job_env()  # the suite's compile flags: less compiling
    run = subprocess.run(["bash", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    saved = np.load(tmp_path / "grad_whh_spec.npz")
    first_bad, finite, norm = saved["first_nonfinite_step"], saved["finite"], saved["norm"]
    assert first_bad.shape == (2, 2) and norm.shape == (2, 2, 3)
    assert (first_bad[0] == -1).all() and (first_bad[1] >= 0).all()  # rho 60 diverges, rho 0.9 does not
    assert np.isfinite(norm).all() and finite[0].all() and (norm[0] > 0).all()  # no NaN saved; real norms kept
    for s in range(2):
        step = int(first_bad[1, s])
        assert not finite[1, s, step:].any() and finite[1, s, :step].all()
        assert f"rho 60.0000, seed {s}: diverged at step {step}; saved up to it" in run.stdout
    assert run.stdout.count("diverged") == 2  # reported once (process 0), not by both processes
