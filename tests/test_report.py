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
