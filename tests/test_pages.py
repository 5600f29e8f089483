"""The page layer: results files checked against their schemas, and the templates' text.

``tests/data/page_quick`` holds the JSON of a quick ``reproduce --all`` run (2026-12-06) with the page and
the docs' blocks the f-string page layer wrote from it: the templates must write the same bytes.
"""

import json
import shutil
from pathlib import Path

import pytest

from experiments import schemas
from experiments.report import ENV, Page, s_, span, write_report

GOLDEN = Path(__file__).parent / "data" / "page_quick"


@pytest.fixture
def run(tmp_path):
    out = tmp_path / "runs"
    shutil.copytree(GOLDEN, out, ignore=shutil.ignore_patterns("report.md", "blocks.json"))
    return out


def test_the_page_is_byte_for_byte_what_it_was(run):
    write_report(run, quick=True, tier="all")
    assert (run / "report.md").read_bytes() == (GOLDEN / "report.md").read_bytes()


def test_the_docs_blocks_are_what_they_were(run):
    from experiments.report_docs import BLOCKS

    write_report(run, quick=True, tier="all")  # writes reference.json, which the blocks quote
    before = json.loads((GOLDEN / "blocks.json").read_text())
    assert set(before) == set(BLOCKS)
    for name, block in BLOCKS.items():
        page = Page(run)
        block(page)
        assert "\n".join(page.lines) == before[name], name


def test_a_missing_key_is_one_line_naming_the_file_and_the_key_path(run):
    file = run / "stock_variants" / "metrics.json"
    m = json.loads(file.read_text())
    del next(iter(m["variants"].values()))["label"]
    file.write_text(json.dumps(m))
    with pytest.raises(ValueError) as err:
        write_report(run, quick=True, tier="all")
    name = next(iter(m["variants"]))
    assert str(err.value) == f"{file}: missing 'variants.{name}.label'; rerun that experiment"
    assert not (run / "report.md").exists()  # nothing written


def test_a_mistyped_value_is_one_line_naming_the_key_and_both_types(tmp_path):
    file = tmp_path / "flossing" / "metrics.json"
    file.parent.mkdir()
    m = json.loads((GOLDEN / "flossing" / "metrics.json").read_text())
    m["conditions"]["floss_before"]["per_delay"][1]["solved_seeds"] = "2"
    file.write_text(json.dumps(m))
    with pytest.raises(ValueError, match=r"^\S+flossing/metrics.json: 'conditions.floss_before.per_delay.1."
                                         r"solved_seeds' is a string, expected an integer; rerun that experiment$"):
        schemas.load(file)
    m["conditions"]["floss_before"]["per_delay"][1]["solved_seeds"] = 2
    m["conditions"]["plain"]["bridgeable_delay"] = None  # null where the schema allows it
    del m["conditions"]["floss_before_and_during"]
    file.write_text(json.dumps(m))
    with pytest.raises(ValueError, match="missing 'conditions.floss_before_and_during'"):  # CONDITIONS' keys
        schemas.load(file)


def test_every_results_file_of_the_run_fits_its_schema_and_reads_unchanged(run):
    files = sorted(run.glob("**/metrics.json"))
    assert len(files) == 14 and all(schemas.schema_of(f) is not None for f in files)  # 7 per draw
    for f in files:
        assert schemas.load(f) == json.loads(f.read_text())
    assert schemas.schema_of(run / "run.json") is None


def test_the_wording_filters():
    assert (span("31", "31"), span("1.2", "3.4"), span("a", "b", " to ")) == ("31", "1.2–3.4", "a to b")
    assert [f"{k} seed{s_(k)}" for k in (0, 1, 4)] == ["0 seeds", "1 seed", "4 seeds"]
    template = ENV.from_string("{{ n }} seed{{ n | s_ }}, {{ lo | span(hi) }}")
    assert template.render(n=1, lo="2", hi="2") == "1 seed, 2"
    assert template.render(n=3, lo="2", hi="5") == "3 seeds, 2–5"


def test_a_template_may_not_read_an_undefined_name():
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        ENV.get_template("timings.md.j2").render()  # no rows given: an error, not an empty section


def test_check_report_names_the_missing_key_in_each_block_that_reads_it(run):
    from experiments.check_report import check_docs

    write_report(run, quick=True, tier="all")
    (run / "run.json").write_text(json.dumps({"quick": True, "tier": "all"}))  # blocks generated, not compared
    file = run / "remedies" / "metrics.json"
    m = json.loads(file.read_text())
    del m["clipping"]["tau"]
    file.write_text(json.dumps(m))
    problems = [p for p in check_docs(run) if "cannot be generated" in p]
    why = f"ValueError(\"{file}: missing 'clipping.tau'; rerun that experiment\")"
    assert sorted(problems) == sorted(f"{doc}: block {name} cannot be generated from {run}: {why}" for doc, name in (
        ("README.md", "readme.remedies"), ("docs/remedies.md", "remedies.clipping"),
        ("docs/remedies.md", "remedies.adding"), ("docs/remedies.md", "remedies.lag"),
        ("docs/remedies.md", "remedies.second_draw")))
