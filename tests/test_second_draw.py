"""The second draw (issue 19, item 4): ``reproduce --all`` runs every experiment again with ``--seed-base 1``,
and the page and the docs set the two draws' verdicts side by side, marking a verdict that flips."""

import json

import pytest

from experiments import check_report, report_docs, report_sections, reproduce, schemas
from experiments.report import Page


def test_all_runs_every_stage_twice_the_second_with_its_own_seed_base():
    report, everything = reproduce.plan("report"), reproduce.plan("all")
    assert [s.name for s in report] == list(reproduce.REPORT_TIER)
    names = [s.name for s in everything]
    assert names == [*(s.name for s in reproduce.STAGES), *(f"{s.name}.base1" for s in reproduce.STAGES)]
    second = everything[len(reproduce.STAGES):]
    for s in second:
        assert s.base == 1 and s.module == s.name.removesuffix(".base1")
        assert s.args[-2:] == ("--seed-base", "1") and s.quick_args[-2:] == ("--seed-base", "1")
        assert reproduce.command(s, reproduce.Path("x"), quick=True)[2] == f"experiments.{s.module}"
    only = reproduce.plan("only", ["flossing"], second=True)
    assert [s.name for s in only] == ["flossing", "flossing.base1"]


def test_second_draw_with_all_is_refused(tmp_path):
    with pytest.raises(reproduce._cli.UsageError, match="--all already runs the second draw"):
        reproduce.main(["--all", "--second-draw", "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_a_second_draws_folder_keeps_its_experiments_schema():
    assert schemas.schema_of("runs/flossing.base1/metrics.json") is schemas.Flossing
    assert schemas.schema_of("runs/stock_variants.base1/adam/metrics.json") is schemas.VariantRun


def _verdicts(*rows):
    return {"verdicts": [{"id": i, "claim": f"claim {i}", "test": "Fisher exact, two-sided", "evidence": e, "p": p,
                          "verdict": v} for i, e, p, v in rows]}


def test_pairs_match_by_id_and_a_flip_or_a_missing_claim_is_not_the_same():
    first = _verdicts(("a", "9/16 vs 0/16", 0.0012, "beats"), ("b", "3/16 vs 2/16", 1.0, "not distinguishable"),
                      ("c", "1 vs 2", None, "no test"))
    second = _verdicts(("b", "4/16 vs 2/16", 0.65, "not distinguishable"), ("a", "5/16 vs 1/16", 0.17,
                                                                            "not distinguishable"))
    assert report_sections.verdict_pairs(first, second) == [(0, 1, False), (1, 0, True), (2, None, False)]


@pytest.fixture
def two_draws(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    for folder, data in (("remedies", _verdicts(("a", "9/16 vs 0/16", 0.0012, "beats"),
                                                ("b", "3/8 vs 2/8", 1.0, "not distinguishable with 8 seeds"))),
                         ("remedies.base1", _verdicts(("a", "5/16 vs 1/16", 0.17, "not distinguishable with 16 seeds"),
                                                      ("b", "4/8 vs 2/8", 0.61, "not distinguishable with 8 seeds")))):
        (out / folder).mkdir(parents=True)
        (out / folder / "metrics.json").write_text(json.dumps(data))
    monkeypatch.setattr(schemas, "schema_of", lambda path: None)  # these files hold only the verdicts
    return out


def test_the_docs_block_sets_the_draws_side_by_side_and_marks_the_flip(two_draws):
    page = Page(two_draws)
    report_docs.BLOCKS["remedies.second_draw"](page)
    text = "\n".join(page.lines)
    assert "**remedies**: 1 of 2 verdicts the same under `--seed-base 0` and `--seed-base 1`." in text
    row_a, row_b = (line for line in page.lines if line.startswith(("| claim a", "| claim b")))
    assert row_a == ("| claim a | Fisher exact, two-sided | 9/16 vs 0/16; p 0.0012 | beats | 5/16 vs 1/16; p 0.17 | "
                     "not distinguishable with 16 seeds | **no: not robust** |")
    assert row_b.endswith("| not distinguishable with 8 seeds | yes |")
    assert check_report._check_sources(two_draws, text, page.sources, "block") == []
    verdicts = check_report._verdicts(page.sources)  # the words are verdicts, the evidence and p may move
    assert set(verdicts.values()) == {"beats", "not distinguishable with 16 seeds", "not distinguishable with 8 seeds"}


def test_the_page_section_lists_only_experiments_with_both_draws(two_draws):
    page = Page(two_draws)
    report_sections.second_draw(page)
    text = "\n".join(page.lines)
    assert text.count("**remedies** (2 tested claims, 1 the same in both draws)") == 1
    assert "flossing" not in text
    empty = Page(two_draws / "nothing")
    report_sections.second_draw(empty)
    assert empty.lines == []
