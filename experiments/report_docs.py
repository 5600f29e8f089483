"""The measured parts of README.md and docs/*.md, written from the main job's JSON.

Each function below writes one block ``<!-- generated: NAME -->`` ... ``<!-- /generated -->`` of a
documentation page by rendering ``templates/NAME.md.j2`` with what the block reads; the template reads
every number through ``Page.num`` (so its source is recorded, and ``python -m experiments.check_report
OUT`` re-derives it). ``check_report OUT --write-docs``
rewrites the blocks from a full run; ``check_report OUT`` fails when a block differs from the run.
The prose around the blocks states no measured number.
"""

from __future__ import annotations

from collections.abc import Callable

from experiments.report import NotInRun
from experiments.report_sections import (
    FL,
    RM,
    S1,
    S2,
    SP,
    SV,
    claim_rows,
    crossing_lengths,
    draw_files,
    draws,
    side,
    wide_starts,
)
from experiments.schemas import CONDITIONS

BLOCKS: dict[str, Callable] = {}


def block(name: str):
    def register(fn):
        BLOCKS[name] = fn
        return fn
    return register


def _forecasts(page) -> dict:
    """What the tables of Experiment 1 and its variants read: ``n1``/``s1`` (stock_forecast), ``sv(name)`` (one
    variant in stock_variants/metrics.json) and ``variants``."""
    return {"n1": page.reader(S1), "s1": page.json(S1), "sv": lambda name: page.reader(SV, "variants", name),
            "variants": page.json(SV)["variants"]}


# ------------------------------------------------------------------------------------------ README


@block("readme.findings")
def readme_findings(page):
    s2 = page.json(S2)
    claims = [(i, j, *s2["claims"][i]["claim"].partition(": ")[::2]) for i, j in claim_rows(s2)]  # words: not recorded
    page.render("readme.findings.md.j2", n1=page.reader(S1), n2=page.reader(S2), ns=page.reader(SP), sp=page.json(SP),
                r=page.reader("reference.json", "experiment1"), claims=claims)


@block("readme.exp2")
def readme_exp2(page):
    sp = page.json(SP)
    page.render("readme.exp2.md.j2", sp=sp, n=page.reader(SP), L=sp["config"]["segment_length"] - 1,
                lengths=crossing_lengths(sp)["relu"], side=side(sp))


@block("readme.variants")
def readme_variants(page):
    page.render("readme.variants.md.j2", **_forecasts(page))


@block("readme.remedies")
def readme_remedies(page):
    rm = page.json(RM)
    page.render("readme.remedies.md.j2", n=page.reader(RM), comparisons=rm["clipping"]["comparisons"],
                adding=rm["adding"]["models"], adding_order=rm["adding"]["headline"])


# --------------------------------------------------------------------------------- stock_forecast


@block("stock_forecast.trap")
def stock_trap(page):
    page.render("stock_forecast.trap.md.j2", n=page.reader(S1))


@block("stock_forecast.size")
def stock_size(page):
    page.render("stock_forecast.size.md.j2", n=page.reader(S1))


@block("stock_forecast.results")
def stock_results(page):
    page.render("stock_forecast.results.md.j2", **_forecasts(page))


@block("stock_forecast.findings")
def stock_findings(page):
    s1, v = page.json(S1), page.json(SV)["variants"]
    by = lambda verdict: [k for k, x in v.items() if x["verdict_vs_persistence"] == verdict]
    ties = [k for k, x in v.items() if x["verdict_vs_persistence"].startswith("not distinguishable")]
    flat = {}
    for k in ties:  # the implied returns move under a quarter of the data's: it learned to be persistence
        ir = page.json(_variant_file(k))["implied_returns"]
        flat[k] = ir["std"][1] is not None and ir["std"][1] < ir["actual_std"] / 4
    losses = s1["final_loss_per_seed"]
    finite = [x for x in losses if x is not None]
    page.render("stock_forecast.findings.md.j2", **_forecasts(page), vr=lambda k: page.reader(_variant_file(k)),
                seeds=s1["seeds"]["count"], better=by("beats"), ties=ties, worse=by("worse"), flat=flat,
                loss_lo=losses.index(min(finite)), loss_hi=losses.index(max(finite)),
                has_m2m=bool(v.get("many_to_many")))


def _variant_file(name: str) -> str:
    return f"stock_variants/{name}/metrics.json"


# ------------------------------------------------------------------------------ gradient_analysis


@block("gradient_analysis.claims")
def gradient_claims(page):
    m = page.json(S2)
    page.render("gradient_analysis.claims.md.j2", m=m, n=page.reader(S2), claims=claim_rows(m), wide=wide_starts(m))


@block("gradient_analysis.lag")
def gradient_lag(page):
    s2, sp = page.json(S2), page.json(SP)
    rows = [(i, next(k for k, e in enumerate(s2["per_rho"]) if abs(e["rho"] - r["rho"]) < 1e-9))
            for i, r in enumerate(sp["per_rho"])]
    finite = [[s for s, v in enumerate(r["lyapunov_top_per_seed"]) if v is not None] for r in sp["per_rho"]]
    page.render("gradient_analysis.lag.md.j2", sp=sp, n=page.reader(SP), n2=page.reader(S2), rows=rows,
                finite=finite, L=sp["config"]["segment_length"] - 1)


@block("gradient_analysis.phase")
def gradient_phase(page):
    sp = page.json(SP)
    page.render("gradient_analysis.phase.md.j2", sp=sp, n=page.reader(SP), lengths=crossing_lengths(sp)["relu"])


# -------------------------------------------------------------------------------------- remedies


@block("remedies.clipping")
def remedies_clipping(page):
    c = page.json(RM)["clipping"]
    page.render("remedies.clipping.md.j2", n=page.reader(RM), runs=c["runs"], settings=c["settings"],
                comparisons=c["comparisons"])


@block("remedies.adding")
def remedies_adding(page):
    a = page.json(RM)["adding"]
    page.render("remedies.adding.md.j2", n=page.reader(RM), models=a["models"], comparisons=a["comparisons"])


@block("remedies.lag")
def remedies_lag(page):
    m = page.json(RM)
    models, a = m["lag_profiles"]["models"], m["adding"]["models"]
    gain = lambda name, stage: models[name][stage]["log10_gain_state"]
    lost = [name for name in models if gain(name, "init") is not None and gain(name, "init") < -3]
    solved = [k for k in models if k in a and a[k]["solved_seeds"] == a[k]["num_seeds"]]
    page.render("remedies.lag.md.j2", n=page.reader(RM), models=models, adding=a, seqs=m["lag_profiles"]["sequences"],
                lost=lost, kept=[name for name in models if name not in lost],
                both=[k for k in solved if gain(k, "trained") is not None and gain(k, "trained") > -1],
                steep=[k for k in solved if gain(k, "trained") is not None and gain(k, "trained") <= -1],
                zero=[k for k in models if models[k]["trained"]["sequences_exactly_zero"]["state"]])


# -------------------------------------------------------------------------------------- flossing



def _argext(values, pick):
    """Index of the smallest (``pick=min``) or largest value of a list that may hold None."""
    good = [(v, i) for i, v in enumerate(values) if v is not None]
    return pick(good)[1]


@block("flossing.choice")
def flossing_choice(page):
    m = page.json(FL)["gradient_choice"]
    before, exact = m["sum_sq_before"], m["gradients"].get("exact")
    page.render("flossing.choice.md.j2", m=m, g=page.reader(FL, "gradient_choice"),
                before_min=_argext(before, min), before_max=_argext(before, max),
                exact_min=None if exact is None else _argext(exact["reduction"], min),
                exact_max=None if exact is None else _argext(exact["reduction"], max))


@block("flossing.recall")
def flossing_recall(page):
    m, n = page.json(FL), page.reader(FL)
    a0, c0 = (m["conditions"][k]["per_delay"][0]["test_mse_mean"] for k in ("plain", "floss_before_and_during"))
    page.render("flossing.recall.md.j2", m=m, n=n, c=page.reader(FL, "config", fmt="{}"),
                sp=page.reader(FL, "spectra"), conditions=CONDITIONS, last=len(m["delays"]) - 1,
                worse_fit=a0 is not None and c0 is not None and c0 > 2 * a0)


@block("readme.flossing")
def readme_flossing(page):
    m, n = page.json(FL), page.reader(FL)
    page.render("readme.flossing.md.j2", n=n, c=page.reader(FL, "config", fmt="{}"),
                g=page.reader(FL, "gradient_choice"), best=m["gradient_choice"]["best"], last=len(m["delays"]) - 1)


# ------------------------------------------------------------------------------ the second draw

SECOND_DRAWS = {"stock_forecast": ("stock_forecast", "stock_variants"),  # a page's block -> its experiments
                "gradient_analysis": ("gradient_stability", "gradient_spectra"),
                "remedies": ("remedies",), "flossing": ("flossing",)}


def _second_draw_block(names):
    def write(page):
        from experiments.reproduce import SECOND_BASE

        for name in names:  # both draws must be in the run (a run without the second draw skips the block)
            if not page.has(draw_files(name)[1]):
                raise NotInRun(f"{draw_files(name)[1]}: the second draw (reproduce --all) is not part of this run")
        page.render("second_draw_block.md.j2", experiments=draws(page, names), base=SECOND_BASE)
    return write


for _page, _names in SECOND_DRAWS.items():
    BLOCKS[f"{_page}.second_draw"] = _second_draw_block(_names)
