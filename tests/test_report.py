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
    assert json.loads((root / "docs" / "generated_from.json").read_text()) == {
        "environment": here, "verdicts": {"fake.block": {}}, "figures": {}}
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


def _elsewhere_docs(tmp_path, monkeypatch, stage: str):
    """A run of ``stage`` with a verdict and three numbers, docs written from it on CPU A, and the run then
    redone on CPU B (another numerical environment): returns ``(out, root, rewrite)``, ``rewrite(**values)``
    changing the run's JSON."""
    from experiments import report_docs, schemas
    from experiments.check_report import check_docs

    out, root = tmp_path / "run", tmp_path / "repo"
    (out / stage).mkdir(parents=True)
    (root / "docs").mkdir(parents=True)
    file = f"{stage}/metrics.json"

    def rewrite(**values):
        m = {"config": {}, "rmse": 15.1634, "steps": 1192, "ratio": 0.5, "verdict": "agrees", **values}
        (out / file).write_text(json.dumps(m))

    def fake(page):
        n = page.reader(file)
        page.add(f"RMSE {n('rmse')}, {n('steps', fmt='{:,}')} steps, ratio {n('ratio')}: {n('verdict', fmt='{}')}.")
    monkeypatch.setattr(report_docs, "BLOCKS", {"fake.block": fake})
    monkeypatch.setattr(schemas, "SCHEMAS", {})  # the fake results are no experiment's metrics.json
    (root / "README.md").write_text("# x\n\n<!-- generated: fake.block -->\n<!-- /generated -->\n")
    env = {"jax": "0.10.2", "jaxlib": "0.10.2", "backend": "cpu", "cpu_model": "CPU A", "cpu_features": ["avx512f"],
           "xla_flags": ""}
    (out / "run.json").write_text(json.dumps({"quick": False, "tier": "all", "environment": env}))
    rewrite()
    assert check_docs(out, root, write=True) == []
    assert "RMSE 15.16, 1,192 steps, ratio 0.50: agrees." in (root / "README.md").read_text()
    (out / "run.json").write_text(json.dumps({"quick": False, "tier": "all",
                                              "environment": {**env, "cpu_model": "CPU B", "cpu_features": []}}))
    return out, root, rewrite


def test_a_run_elsewhere_may_move_the_numbers_of_a_long_training_but_not_its_verdict(tmp_path, monkeypatch):
    from experiments.check_report import check_docs

    out, root, rewrite = _elsewhere_docs(tmp_path, monkeypatch, "remedies")
    rewrite(steps=1240, ratio=0.25)  # two numbers moved on the other CPU
    notes = []
    assert check_docs(out, root, notes=notes) == []
    assert notes == ["README.md: fake.block: 2 of 3 numbers moved (1,192 → 1,240 (+4.0%), 0.50 → 0.25 (-50.0%)); "
                     "no verdict changed"]
    rewrite(verdict="disagrees")  # a verdict changed: that fails, wherever the run ran
    problems = check_docs(out, root, notes=[])
    assert problems == ["README.md: block fake.block: a verdict changed: "
                        "remedies/metrics.json:verdict: agrees → disagrees"]


def test_the_report_tiers_blocks_are_compared_exactly_even_elsewhere(tmp_path, monkeypatch):
    from experiments.check_report import check_docs

    out, root, rewrite = _elsewhere_docs(tmp_path, monkeypatch, "stock_forecast")
    rewrite(steps=1240)  # Experiment 1 agrees to the digit across CPUs (docs/reproducibility.md): not a note
    problems = check_docs(out, root, notes=[])
    assert len(problems) == 1 and "block fake.block differs from the run in" in problems[0]


def test_a_changed_wording_is_a_changed_verdict(tmp_path, monkeypatch):
    from experiments.check_report import _compare_elsewhere

    problem, note = _compare_elsewhere("b", "all three vanish: 0.12\n", "mixed: 0.12\n", None, {})
    assert problem == "block b: a verdict changed (the wording differs, not only numbers): " \
                      "'all three vanish: 0.12' → 'mixed: 0.12'" and note == ""
    problem, note = _compare_elsewhere("b", "lambda 0.12, 20 steps\n", "lambda -0.13, 20 steps\n", None, {})
    assert problem is None
    assert note == "b: 1 of 2 numbers moved (0.12 → -0.13 (-208.3%)); no wording changed (verdicts not recorded)"


def test_the_docs_images_are_the_runs_own_files(tmp_path, monkeypatch):
    from experiments import check_report
    from experiments.check_report import check_docs

    out, root = _fake_docs(tmp_path, monkeypatch)
    (out / "run.json").write_text(json.dumps({"quick": False, "environment": {"cpu_model": "A"}}))
    (out / "exp" / "fig.png").write_bytes(b"\x89PNG run")
    readme = root / "README.md"
    readme.write_text(readme.read_text() + "\n![a figure](docs/figures/fig.png)\n![stray](docs/figures/stray.png)\n")
    monkeypatch.setattr(check_report, "FIGURES", {"docs/figures/fig.png": "exp/fig.png"})
    problems = check_docs(out, root, write=True)  # copies the run's figure into the docs
    assert problems == ["docs/figures/stray.png is shown by the docs but made by no run: add it to "
                        "check_report.FIGURES"]
    assert (root / "docs" / "figures" / "fig.png").read_bytes() == b"\x89PNG run"
    readme.write_text(readme.read_text().replace("![stray](docs/figures/stray.png)\n", ""))
    assert check_docs(out, root) == []
    (out / "exp" / "fig.png").write_bytes(b"\x89PNG redrawn")  # a figure the docs show, not regenerated with them
    problems = check_docs(out, root)
    assert len(problems) == 1 and problems[0].startswith("docs/figures/fig.png is not this run's exp/fig.png")
    (out / "run.json").write_text(json.dumps({"quick": True, "environment": {"cpu_model": "A"}}))
    assert check_docs(out, root) == []  # a quick run draws other data: its figures are made, not compared
    (out / "exp" / "fig.png").unlink()
    assert check_docs(out, root) == ["docs/figures/fig.png: the run's exp/fig.png is missing"]


def test_progress_lines_say_done_total_elapsed_and_left():
    import io

    from experiments._progress import Progress, clock

    now = [0.0]
    stream = io.StringIO()
    progress = Progress("remedies: adding problem", total=20_000, stream=stream, clock=lambda: now[0])
    for done, t in ((1_000, 1.0), (2_000, 10.0), (3_000, 11.0), (5_000, 20.5)):
        now[0] = t
        progress.update(done)
    progress.close()
    assert stream.getvalue().splitlines() == [
        "remedies: adding problem: 2,000/20,000 steps (10%), 10 s elapsed, about 1:30 left",
        "remedies: adding problem: 5,000/20,000 steps (25%), 20 s elapsed, about 1:02 left",
        "remedies: adding problem: 5,000/20,000 steps (25%), 20 s elapsed, about 1:02 left"]
    quiet = io.StringIO()
    short = Progress("short", total=10, stream=quiet, clock=lambda: 0.0)
    short.update(10)
    short.close()
    assert quiet.getvalue() == ""  # work shorter than a line's interval prints nothing
    assert (clock(59.4), clock(60), clock(3725), clock(-3)) == ("59 s", "1:00", "62:05", "0 s")


def test_the_progress_interval_comes_from_the_environment(monkeypatch):
    import io

    import pytest

    from experiments._progress import Progress, progress_every

    monkeypatch.delenv("RNNJAX_PROGRESS_EVERY", raising=False)
    assert progress_every() == 10.0
    monkeypatch.setenv("RNNJAX_PROGRESS_EVERY", " 2.5 ")
    assert progress_every() == 2.5
    now, stream = [0.0], io.StringIO()
    progress = Progress("p", total=10, stream=stream, clock=lambda: now[0])
    for done, t in ((1, 2.4), (2, 2.5), (3, 4.9), (4, 5.0)):
        now[0] = t
        progress.update(done)
    assert [line.split(":")[1].split()[0] for line in stream.getvalue().splitlines()] == ["2/10", "4/10"]
    monkeypatch.setenv("RNNJAX_PROGRESS_EVERY", "0.1")
    assert progress_every() == 0.1  # the smallest allowed
    monkeypatch.setenv("RNNJAX_PROGRESS_EVERY", "  ")
    assert progress_every() == 10.0  # only spaces: unset
    for bad in ("0", "-1", "1e-9", "0.09", "nan", "inf", "1e400", "soon"):
        monkeypatch.setenv("RNNJAX_PROGRESS_EVERY", bad)
        with pytest.raises(ValueError, match=rf"^RNNJAX_PROGRESS_EVERY='{bad}': the seconds between progress lines "
                                             r"must be a finite number >= 0.1 \(unset: 10\)$"):
            progress_every()


def test_a_results_file_missing_a_key_is_one_clear_error(tmp_path):
    import pytest

    from experiments.report import write_report

    (tmp_path / "stock_forecast").mkdir()
    (tmp_path / "stock_forecast" / "metrics.json").write_text(json.dumps({"rmse": 1.0}))  # no "rmse_min"
    with pytest.raises(ValueError, match=r"^\S+/stock_forecast/metrics.json: missing 'rmse_min'; rerun that "
                                         r"experiment$"):
        write_report(tmp_path)
    assert not (tmp_path / "report.md").exists()


def test_the_docs_are_written_from_a_full_run_of_every_study_only(tmp_path):
    import pytest

    from experiments import _cli
    from experiments.check_report import main

    _fake_run(tmp_path)
    for record, why in (({"quick": True, "tier": "all"}, "holds a --quick run"),
                        ({"quick": False, "tier": "report"}, "holds the report tier only")):
        (tmp_path / "run.json").write_text(json.dumps(record))
        with pytest.raises(_cli.UsageError, match=why):
            main([str(tmp_path), "--write-docs"])
