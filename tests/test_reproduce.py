"""The main job end to end on real (tiny) experiment outputs: run_stage's swap, --only, the page and its
checker, a killed run, and a standalone experiment beside a finished main job."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from cli_driver import digest
from conftest import USER_XLA_FLAGS
from test_cli import env

from experiments import _cli, reproduce
from experiments.check_report import check
from experiments.report import write_report
from experiments.reproduce import MARK, Stage


@pytest.fixture(scope="module")
def job(quick_runs):
    """A finished main job: every experiment's quick run through ``run_stage`` (shared with the experiments'
    own tests, see conftest), then the page; files made under umask 022."""
    quick_runs.every()
    with quick_runs.once("page"):  # one pytest-xdist worker writes it, the others read it
        if not (quick_runs.root / "report.md").is_file():
            assert write_report(quick_runs.root) == quick_runs.root / "report.md"
    return quick_runs.root


def test_the_main_job_writes_a_page_true_to_its_json(job):
    assert check(job) == []
    text = (job / "report.md").read_text()
    for name in reproduce.STAGES:
        assert (job / name.name / MARK).is_file() and (job / name.name / "metrics.json").is_file()
        if name.name != "stock_variants":  # the variants are a table under Experiment 1, without figures
            assert f"]({name.name}/fig" in text  # every section rendered its figures
    assert "Not run" not in text and "None" not in text and "True" not in text
    numbers = [(int(n), s) for n, s in re.findall(r"\]\([a-z_]+/fig(\d+)([a-z]?)_", text)]
    assert numbers == sorted(numbers) == sorted([(k, "") for k in range(1, 15)] + [(9, "b")])  # in order
    assert sorted(p.name for p in job.iterdir() if p.name.startswith(".")) == []  # no partial or temp folder left


def test_results_get_the_users_umask(job):
    modes = {oct(p.stat().st_mode & 0o777) for p in job.rglob("*") if p.is_file()}
    assert modes == {"0o644"}  # not mkstemp's 0600
    assert oct((job / "stock_forecast").stat().st_mode & 0o777) == "0o755"


def _fake_stage(monkeypatch, name: str, *, fail: bool = False, calls: list | None = None):
    """``experiments.<name>``: writes ``result.txt`` into --out, then raises when ``fail``."""

    def main(argv):
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.txt").write_text(f"new {name}\n")
        if calls is not None:
            calls.append(name)
        if fail:
            raise RuntimeError(f"{name} failed half-way")
        (out / "metrics.json").write_text("{}\n")
        return {}

    monkeypatch.setitem(sys.modules, f"experiments.{name}", types.SimpleNamespace(main=main))
    return Stage(name, name, (), ())


def test_run_stage_swaps_the_partial_folder_into_place(tmp_path, monkeypatch):
    stage = _fake_stage(monkeypatch, "okstage")
    (tmp_path / "okstage").mkdir()
    (tmp_path / "okstage" / MARK).write_text("")
    (tmp_path / "okstage" / "stale.txt").write_text("old run\n")
    reproduce.run_stage(stage, tmp_path, quick=False)
    assert sorted(p.name for p in (tmp_path / "okstage").iterdir()) == [MARK, "metrics.json", "result.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["okstage"]  # no .partial, no .old


def test_run_stage_keeps_the_old_results_when_the_stage_raises(tmp_path, monkeypatch):
    (tmp_path / "boom").mkdir()
    (tmp_path / "boom" / MARK).write_text("")
    (tmp_path / "boom" / "result.txt").write_text("old, complete\n")
    before = digest(tmp_path / "boom")
    with pytest.raises(RuntimeError, match="failed half-way"):
        reproduce.run_stage(_fake_stage(monkeypatch, "boom", fail=True), tmp_path, quick=False)
    assert digest(tmp_path / "boom") == before
    reproduce.run_stage(_fake_stage(monkeypatch, "boom"), tmp_path, quick=False)  # the next run cleans up
    assert (tmp_path / "boom" / "result.txt").read_text() == "new boom\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["boom"]


def test_run_stage_never_replaces_a_folder_it_did_not_write(tmp_path, monkeypatch):
    (tmp_path / "okstage").mkdir()
    (tmp_path / "okstage" / "mine.txt").write_text("someone's standalone run\n")
    with pytest.raises(_cli.UsageError, match="was not written by the main job"):
        reproduce.run_stage(_fake_stage(monkeypatch, "okstage"), tmp_path, quick=False)
    assert (tmp_path / "okstage" / "mine.txt").read_text() == "someone's standalone run\n"


def test_only_runs_the_named_stages_and_the_page_uses_what_is_there(tmp_path, monkeypatch):
    calls = []
    stages = (_fake_stage(monkeypatch, "okstage", calls=calls), _fake_stage(monkeypatch, "other", calls=calls))
    monkeypatch.setattr(reproduce, "STAGES", stages)
    page = reproduce.main(["--out", str(tmp_path), "--only", "okstage"])
    assert calls == ["okstage"] and not (tmp_path / "other").exists()
    assert "Not run" in page.read_text()  # the real experiments' sections say they are missing
    assert check(tmp_path) == []


def _diverge(runs: Path) -> None:
    """Rewrite the tiny job's JSON as runs whose every seed went non-finite (nulls where numbers were)."""
    path = runs / "stock_forecast" / "metrics.json"
    m = json.loads(path.read_text())
    for key in list(m):
        if key.startswith(("rmse", "mae", "train_rmse", "train_mae")):
            m[key] = None if not key.endswith("per_seed") else [None] * len(m[key])
    m["beats_persistence"], m["verdict_vs_persistence"] = None, "no finite seed"
    m["seeds"]["ok"] = 0
    for st in m["seeds"]["status"]:
        st.update(status="nonfinite", first_nonfinite_step=1, message="training went non-finite at step 1")
    m["final_loss_per_seed"] = [None] * len(m["final_loss_per_seed"])
    path.write_text(json.dumps(m))
    path = runs / "remedies" / "metrics.json"
    m = json.loads(path.read_text())
    for run in m["clipping"]["runs"]:
        run.update(finite=False, first_nonfinite_step=0, final_loss=None, last_finite_loss=None)
    for model in m["adding"]["models"].values():
        model.update(test_mse_mean=None, test_mse_min=None, test_mse_max=None, solved_seeds=0)
    path.write_text(json.dumps(m))


def test_the_page_renders_runs_that_went_non_finite(job, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(job, runs)
    _diverge(runs)
    page = write_report(runs).read_text()
    assert "**4 of 4 seeds went non-finite** (every one: the RNN has no RMSE or MAE here, shown as n/a)" in page
    assert "| n/a | n/a |" in page and "no seed gave a finite forecast" in page  # a range of n/a collapses
    assert "— (diverged)" in page and "None" not in page
    assert check(runs) == []


def test_a_standalone_experiment_leaves_the_main_jobs_runs_intact(job, tmp_path, monkeypatch, capsys):
    """The experiment's command (``_cli.entry``, as its ``__main__`` runs it) in this process, from ``tmp_path``."""
    from experiments import gradient_stability

    shutil.copytree(job, tmp_path / "runs")
    before = digest(tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    code = _cli.entry(gradient_stability.main, "gradient_stability",
                      ["--quick", "--steps", "2", "--seeds", "1", "--rhos", "0.9", "--repeats", "3", "--devices", "1"])
    run = capsys.readouterr()
    assert code == 0, run.err[-2000:]
    after = digest(tmp_path / "runs")
    new = sorted({k.split("/")[0] for k in set(after) - set(before)})
    assert len(new) == 1 and new[0].startswith("gradient_stability-")  # its own folder, by default
    assert {k: v for k, v in after.items() if not k.startswith(new[0])} == before
    assert f"wrote runs/{new[0]}/" in run.out
    assert check(tmp_path / "runs") == []


def test_a_run_killed_mid_write_leaves_the_previous_results(job, tmp_path):
    out = tmp_path / "sf"
    shutil.copytree(job / "stock_forecast", out)
    (out / MARK).unlink()  # a standalone run's folder: a standalone run never replaces the main job's
    before = digest(out)
    proc = subprocess.Popen([sys.executable, "-m", "experiments.stock_forecast", "--quick", "--epochs", "2",
                             "--hidden", "4", "--out", str(out)], cwd=tmp_path, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, temp = time.monotonic() + 240, None
    while time.monotonic() < deadline and proc.poll() is None:
        found = [p for p in tmp_path.glob(".sf.tmp-*") if any(p.iterdir())]
        if found:  # the new run has begun writing its files
            temp = found[0]
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=60)
    assert temp is not None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
    assert proc.returncode == -signal.SIGKILL
    assert digest(out) == before  # the previous run, whole
    assert temp.exists()  # the killed run's half-written folder, beside it ...
    assert _cli.clean_stale(out) == [temp] and not temp.exists()  # ... removed at the next start
    assert digest(out) == before


def test_a_swap_killed_between_its_renames_is_undone_at_the_next_start(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    old = tmp_path / f".out.old-{int(dead.stdout)}"
    old.mkdir()
    (old / "metrics.json").write_text("{}\n")
    _cli.clean_stale(tmp_path / "out")
    assert (tmp_path / "out" / "metrics.json").read_text() == "{}\n" and not old.exists()


def test_the_report_tiers_quick_run_then_check_report(quick_runs, capsys):
    """``reproduce --quick`` (the default tier) as a user runs it, then ``check_report`` on it: exit 0; stages
    numbered in the order they start, each with its expected time, final paths only, the page names its tier.
    The run is shared (``quick_runs.report_tier``, conftest): its ``gradient_spectra`` serves the main job too."""
    from experiments import check_report

    out, run = quick_runs.report_tier()
    assert run["returncode"] == 0, run["stderr"][-3000:]
    lines = run["stdout"].splitlines()
    starts = [line for line in lines if re.match(r"\[\d/3\] \w+ started", line)]
    assert [line[:5] for line in starts] == ["[1/3]", "[2/3]", "[3/3]"]  # in run order
    assert all(re.search(r"; about (\d+ s|\d+:\d\d) on the 2-core development machine\)$", line) for line in starts)
    assert sorted(re.match(r"\[\d/3\] (\w+)", line)[1] for line in starts) == sorted(reproduce.REPORT_TIER)
    assert len([line for line in lines if re.match(r"\[\d/3\] \w+ done in", line)]) == 3
    assert ".partial" not in run["stdout"] and ".tmp-" not in run["stdout"]  # final paths only
    assert lines[0].startswith("reproduce: the report tier, quick mode: 3 experiments")
    assert sorted(p.name for p in out.iterdir()) == [".made-by-reproduce", "gradient_spectra", "gradient_stability",
                                                     "reference.json", "report.md", "report_sources.json", "run.json",
                                                     "stock_forecast"]
    page = (out / "report.md").read_text()
    assert "Made by the **report tier**" in page and "--all` adds the extended studies" in page
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["tier"] == "report"
    if "--xla_backend_optimization_level" not in USER_XLA_FLAGS:  # the job's own level, not the suite's 0 (conftest)
        assert "--xla_backend_optimization_level=1" in run_json["environment"]["xla_flags"].split()
    capsys.readouterr()
    # check_report's command in this process (its process exit statuses: test_cli.test_debug_shows_the_traceback)
    assert _cli.entry(check_report.main, "check_report", [str(out)]) == 0, capsys.readouterr().out[-3000:]
    assert capsys.readouterr().out.splitlines()[-1].endswith(": OK")


def test_a_stage_that_stays_silent_gets_a_progress_line():
    line = reproduce._still_running(2, 3, reproduce.STAGES[0], 20.2, quick=False)
    assert line == "[2/3] stock_forecast running: 20 s elapsed of about 26 s expected, about 6 s left"
    assert reproduce._still_running(1, 3, reproduce.STAGES[0], 65, quick=False).endswith("past the expected time")
    assert reproduce.expected_total(reproduce.STAGES, False, 2) == 261 + 114  # longest first into the freer slot
    assert reproduce.expected_total(reproduce.STAGES[:3], False, 1) == 26 + 12 + 32


def test_what_a_stage_prints_names_its_final_folder(tmp_path):
    import io

    edit = reproduce.final_paths(tmp_path / ".x.partial", tmp_path / "x")
    assert edit(f"Results in {tmp_path}/.x.partial.tmp-6428-ab_c/many/") == f"Results in {tmp_path}/x/many/"
    assert edit(f"wrote {tmp_path}/.x.partial/: a.csv") == f"wrote {tmp_path}/x/: a.csv"
    # the experiment's own atomic folder is a hidden sibling of the partial one (seen in a full --all run)
    assert edit(f"Results in {tmp_path}/..x.partial.tmp-6072-xcfh10pv/adam/") == f"Results in {tmp_path}/x/adam/"
    sink = io.StringIO()
    stream = reproduce._LineFilter(sink, edit)
    stream.write(f"one {tmp_path}/.x.partial\ntwo")
    stream.flush()
    assert sink.getvalue() == f"one {tmp_path}/x\ntwo"


TIMINGS = {"timings_s", "seconds_per_program", "cost", "wall_s", "total_seconds", "seconds"}


def _scale_timings(obj, factor: float):
    """A copy of a JSON value whose run-to-run timings (any number under a key of :data:`TIMINGS`) are scaled."""
    if isinstance(obj, dict):
        return {k: (_scale_all(v, factor) if k in TIMINGS else _scale_timings(v, factor)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scale_timings(v, factor) for v in obj]
    return obj


def _scale_all(obj, factor: float):
    if isinstance(obj, dict):
        return {k: _scale_all(v, factor) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scale_all(v, factor) for v in obj]
    return obj * factor if isinstance(obj, float) else obj


def _docs_from(job: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The quick job copied as if it were a full ``--all`` run, and a copy of README.md and docs/ written from it."""
    from experiments.check_report import ROOT, check_docs
    from rnnjax.devices import environment

    out, root = tmp_path / "runs", tmp_path / "repo"
    shutil.copytree(job, out)
    (out / "run.json").write_text(json.dumps({"quick": False, "tier": "all", "total_seconds": 100.0,
                                              "environment": environment()}))
    shutil.copytree(ROOT / "docs", root / "docs")
    shutil.copy(ROOT / "README.md", root / "README.md")
    assert check_docs(out, root, write=True) == []
    assert check_docs(out, root) == []
    return out, root


def test_check_report_passes_on_a_run_whose_timings_differ_and_fails_on_a_changed_verdict(job, tmp_path):
    from experiments.check_report import check_docs

    out, root = _docs_from(job, tmp_path)
    for path in [out / "run.json", *out.glob("*/metrics.json"), *out.glob("*/*.json")]:
        path.write_text(json.dumps(_scale_timings(json.loads(path.read_text()), 1.7)))
    write_report(out, tier="all")
    assert check(out) == [] and check_docs(out, root) == []  # no run time in a checked block
    s2 = out / "gradient_stability" / "metrics.json"
    m = json.loads(s2.read_text())
    m["claims"][0]["verdict"] = "agrees" if m["claims"][0]["verdict"] != "agrees" else "disagrees"
    s2.write_text(json.dumps(m))
    problems = check_docs(out, root)
    assert problems and all("differs from the run in" in p for p in problems)


def test_no_generated_block_reads_a_run_time(job):
    from experiments.report import NotInRun, Page
    from experiments.report_docs import BLOCKS

    skipped = []
    for name, block in BLOCKS.items():
        page = Page(job)
        try:
            block(page)
        except NotInRun:  # the second-draw blocks: this job ran one draw
            skipped.append(name)
            continue
        timed = [s for s in page.sources if TIMINGS & set(map(str, s["path"])) or s["file"] == "run.json"]
        assert timed == [], name
    assert skipped and all(name.endswith(".second_draw") for name in skipped)


def test_every_image_the_docs_show_is_made_by_the_run(job, tmp_path):
    from experiments.check_report import FIGURES, shown_images

    shown = shown_images()
    assert shown and shown <= set(FIGURES)
    for image in shown:
        stage, name = FIGURES[image].split("/")
        assert name in json.loads((job / stage / "metrics.json").read_text())["figures"]  # the run draws it
    _, root = _docs_from(job, tmp_path)  # --write-docs copies every one of them from the run
    for image in shown:
        assert (root / image).read_bytes() == (job / FIGURES[image]).read_bytes()


def test_all_and_only_do_not_mix_and_the_tiers_hold_every_stage_once(tmp_path):
    with pytest.raises(_cli.UsageError, match="--all cannot be added to it"):
        reproduce.main(["--all", "--only", "flossing", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
    assert sorted(reproduce.REPORT_TIER + reproduce.EXTENDED) == sorted(s.name for s in reproduce.STAGES)
    assert reproduce.REPORT_TIER == ("stock_forecast", "gradient_stability", "gradient_spectra")
    assert [reproduce.tier_of(None, False), reproduce.tier_of(None, True), reproduce.tier_of(["remedies"], False)] \
        == ["report", "all", "only"]


def test_a_silent_stage_in_this_process_gets_progress_lines_and_final_paths(tmp_path, monkeypatch, capsys):
    """--jobs 1: the stage's own lines name its final folder, and the job prints progress while it is silent."""

    def main(argv):
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        print(f"[slow] writing into {out}/", flush=True)
        time.sleep(1.0)  # silent for longer than the heartbeat below
        (out / "metrics.json").write_text("{}\n")
        return {}

    monkeypatch.setitem(sys.modules, "experiments.slow", types.SimpleNamespace(main=main))
    monkeypatch.setattr(reproduce, "STAGES", (Stage("slow", "a slow stage", (), (), 5.0, 1.0),))
    monkeypatch.setenv("RNNJAX_PROGRESS_EVERY", "0.2")  # the heartbeat: 0.2 s instead of 10
    reproduce.main(["--out", str(tmp_path), "--only", "slow", "--jobs", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "[1/1] slow started: a slow stage (full; about 5 s on the 2-core development machine)"
    assert lines[2] == f"[slow] writing into {tmp_path}/slow/"  # never the hidden partial folder
    assert re.fullmatch(r"\[1/1\] slow running: [01] s elapsed of about 5 s expected, about [45] s left", lines[3])
    assert any(re.fullmatch(rf"\[1/1\] slow done in 1 s \(job elapsed 1 s\): {tmp_path}/slow/", x) for x in lines)
