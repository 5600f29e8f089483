"""docs/tutorial.md's and the README's code blocks run, in order, in one namespace: the examples cannot rot."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_blocks(page: Path, at_least: int) -> dict:
    """Execute every ```python block of ``page`` in order in one namespace; returns the namespace."""
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert len(blocks) >= at_least, f"{page.name} lost its code blocks"
    namespace: dict = {"__name__": page.stem}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{page.name}[block {i}]", "exec"), namespace)
    return namespace


def test_tutorial_code_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = run_blocks(ROOT / "docs" / "tutorial.md", at_least=5)
    out = capsys.readouterr().out
    assert "hand BPTT" in out
    assert (tmp_path / "tutorial_lag_profile.png").stat().st_size > 10_000
    # section 4's claim, with the numbers the run measured: leaky exponents are closer to zero
    assert -1.0 < namespace["top"][1.0] < namespace["top"][0.3] < 0.0


def test_readme_examples_run(tmp_path, monkeypatch):
    """The README's library examples (Using the library, Bring your own cell) run as written, in order."""
    monkeypatch.chdir(tmp_path)
    namespace = run_blocks(ROOT / "README.md", at_least=2)
    assert namespace["lyap"].shape == (50,) and bool(namespace["history"].finite.all())
