"""The results page: built only from JSON, and the checker CI runs catches any drift."""

import json

from experiments.check_report import check
from experiments.report import Page


def _fake_run(tmp_path, *, tamper=None, drop_figure=False):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "metrics.json").write_text(json.dumps({"rmse": 15.1634, "runs": [{"loss": 0.000123}]}))
    if not drop_figure:
        (tmp_path / "exp" / "fig.png").write_bytes(b"\x89PNG")
    page = Page(tmp_path)
    loss = page.num('exp/metrics.json', 'runs', 0, 'loss', fmt='{:.2e}')
    page.add(f"RMSE {page.num('exp/metrics.json', 'rmse')}, loss {loss}"
             " (report §4.1)")
    page.figure("exp", "fig.png", "*Figure.* reading")
    text = "\n".join(page.lines)
    if tamper:
        text = text.replace(*tamper)
    (tmp_path / "report.md").write_text(text)
    (tmp_path / "report_sources.json").write_text(json.dumps(page.sources))
    return page


def test_page_numbers_come_from_json(tmp_path):
    page = _fake_run(tmp_path)
    assert sorted(s["text"] for s in page.sources) == ["1.23e-04", "15.16"]
    assert check(tmp_path) == []


def test_checker_catches_a_hand_edited_number(tmp_path):
    _fake_run(tmp_path, tamper=("15.16", "15.17"))
    problems = check(tmp_path)
    assert any("15.17" in p and "comes from no JSON" in p for p in problems)
    assert any("15.16" in p and "not on the page" in p for p in problems)


def test_checker_catches_a_changed_json_and_a_missing_figure(tmp_path):
    _fake_run(tmp_path, drop_figure=True)
    (tmp_path / "exp" / "metrics.json").write_text(json.dumps({"rmse": 9.0, "runs": [{"loss": 0.000123}]}))
    problems = check(tmp_path)
    assert "missing figure exp/fig.png" in problems
    assert any("is 9.00, the page says 15.16" in p for p in problems)


def _fake_docs(tmp_path, monkeypatch, prose="A setting: lr 0.01."):
    """A run folder with one metrics.json, and a repository root whose README holds one generated block."""
    from experiments import report_docs

    out = tmp_path / "run"
    (out / "exp").mkdir(parents=True)
    (out / "exp" / "metrics.json").write_text(json.dumps({"config": {"lr": 0.01}, "rmse": 15.1634}))

    def fake(page):
        page.add(f"RMSE {page.num('exp/metrics.json', 'rmse')}.")
    monkeypatch.setattr(report_docs, "BLOCKS", {"fake.block": fake})
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "README.md").write_text(f"# x\n\n{prose}\n\n<!-- generated: fake.block -->\nRMSE 15.16.\n"
                                    "<!-- /generated -->\n")
    return out, root


def test_docs_blocks_are_checked_against_the_run(tmp_path, monkeypatch):
    from experiments.check_report import check_docs

    out, root = _fake_docs(tmp_path, monkeypatch)
    assert check_docs(out, root) == []
    (out / "exp" / "metrics.json").write_text(json.dumps({"config": {"lr": 0.01}, "rmse": 9.0}))  # a new run
    assert any("block fake.block differs" in p for p in check_docs(out, root))
    assert check_docs(out, root, write=True) == []  # --write-docs brings the block up to date
    assert "RMSE 9.00." in (root / "README.md").read_text() and check_docs(out, root) == []


def test_write_docs_records_the_runs_environment_and_the_check_explains_another_one(tmp_path, monkeypatch):
    from experiments.check_report import check_docs, environment_note

    out, root = _fake_docs(tmp_path, monkeypatch)
    here = {"jax": "0.10.2", "jaxlib": "0.10.2", "backend": "cpu", "device_kind": "cpu", "devices": 2,
            "machine": "x86_64", "cpu_model": "CPU A", "cpu_features": ["avx", "avx2", "avx512f"], "xla_flags": ""}
    (out / "run.json").write_text(json.dumps({"quick": False, "environment": here}))
    assert "do not record where they ran" in environment_note(out, root)  # docs without a record
    assert check_docs(out, root, write=True) == []
    assert json.loads((root / "docs" / "generated_from.json").read_text()) == {"environment": here}
    assert environment_note(out, root) is None
    (out / "run.json").write_text(json.dumps({"quick": False, "environment": {**here, "devices": 1}}))
    assert environment_note(out, root) is None  # the device count does not change the numbers
    elsewhere = {**here, "cpu_model": "CPU B", "cpu_features": ["avx", "avx2"]}
    (out / "run.json").write_text(json.dumps({"quick": False, "environment": elsewhere}))
    note = environment_note(out, root)
    assert "generated on CPU A (avx/avx2/avx512f)" in note and "this run ran on CPU B (avx/avx2)" in note


def test_docs_prose_may_not_state_a_measured_number(tmp_path, monkeypatch):
    from experiments.check_report import check_docs

    out, root = _fake_docs(tmp_path, monkeypatch, prose="We measured 15.16 once; `0.77` in code is fine.")
    problems = check_docs(out, root)
    assert len(problems) == 1 and "15.16 outside a generated block" in problems[0]
    (root / "docs" / "x.md").write_text("<!-- generated: nope -->\n<!-- /generated -->\n")
    assert any("unknown generated block nope" in p for p in check_docs(out, root))


def test_every_generated_block_in_the_docs_has_a_generator_and_back():
    """The documentation's block markers and experiments/report_docs.py name the same blocks, once each."""
    from experiments.check_report import BLOCK, doc_files
    from experiments.report_docs import BLOCKS

    names = [m.group(2) for path in doc_files() for m in BLOCK.finditer(path.read_text())]
    assert sorted(names) == sorted(BLOCKS)
