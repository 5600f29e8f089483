"""The sections of the results page, one function each: what a section reads, rendered by its template.

Each section reads one experiment's ``metrics.json`` (written last by the experiment, so its
presence means that experiment completed) and skips itself with a note when it is missing. Its text
is ``templates/<section>.md.j2``; every number in it goes through ``Page.num`` (a reader ``n``). The
sentences page and docs share (``dm_verdict``, ``claim_measured``, the remedies' tables, ...) are
macros in ``templates/_*.md.j2``, so page and docs say the same thing.
"""

from __future__ import annotations

from experiments.schemas import CONDITIONS

S1, SV, S2, SP, RM, FL = (f"{name}/metrics.json" for name in ("stock_forecast", "stock_variants", "gradient_stability",
                                                              "gradient_spectra", "remedies", "flossing"))


def _missing(page, file: str, title: str) -> bool:
    if page.has(file):
        return False
    if not page.shows(file.split("/")[0]):  # not in this tier: the page's head lists what --all adds
        return True
    page.add(f"## {title}", "", f"*Not run: `{file}` is missing (run without `--only`).*", "")
    return True


# ------------------------------------------------------------------------------------------ sections

def experiment1(page) -> None:
    """Experiment 1, and its variants where the run has them."""
    title = "Experiment 1 — next-day stock price (report §3, Table 1, Figures 1–2)"
    if _missing(page, S1, title):
        return
    m = page.json(S1)
    shows = page.shows("stock_variants")
    page.render("experiment1.md.j2", title=title, m=m, n=page.reader(S1),
                r=page.reader("reference.json", "experiment1"), seeds=m["seeds"]["count"],
                diverged=sum(st["status"] != "ok" for st in m["seeds"]["status"]),
                shows_variants=shows, variants=page.json(SV)["variants"] if shows and page.has(SV) else None,
                sv=lambda name: page.reader(SV, "variants", name), SV=SV)


def experiment2(page) -> None:
    title = "Experiment 2 — gradient norm vs spectral radius (report §5, Figure 3)"
    if _missing(page, S2, title):
        return
    m = page.json(S2)
    page.render("experiment2.md.j2", title=title, m=m, n=page.reader(S2), claims=claim_rows(m), wide=wide_starts(m))


def claim_rows(m) -> list[tuple[int, int]]:
    """``(i, j)``: Experiment 2's claims[i] and the per_rho[j] of its rho."""
    return [(i, next(k for k, e in enumerate(m["per_rho"]) if abs(e["rho"] - c["rho"]) < 1e-9))
            for i, c in enumerate(m["claims"])]


def wide_starts(m) -> list[int]:
    """The rhos whose seeds' first values are so far apart (a factor 10 or more) that the median misleads."""
    return [i for i, e in enumerate(m["per_rho"])
            if e["start_seed_min"] and e["start_seed_max"] / e["start_seed_min"] >= 10]


def crossing_lengths(m) -> dict[str, list[str]]:
    """The sequence lengths of the phase diagram's crossings, per activation."""
    return {act: [t for t in m["phase_crossings"][act] if t.isdigit()] for act in ("relu", "tanh")}


def gradient_spectra(page) -> None:
    title = "Beyond the report — lag profiles, Jacobian spectra, Lyapunov exponents, phase diagram"
    if _missing(page, SP, title):
        return
    m = page.json(SP)
    page.render("gradient_spectra.md.j2", title=title, m=m, n=page.reader(SP), lengths=crossing_lengths(m),
                side=side(m))


def side(m) -> str:
    """Where ReLU's median crossings lie against the mean-field edge sqrt 2: 'below', 'above' or 'around'."""
    pc = m["phase_crossings"]["relu"]
    c = [pc[t]["rho_lyapunov_zero"] for t in pc if t.isdigit() and pc[t]["rho_lyapunov_zero"] is not None]
    edge = m["relu_mean_field_edge"]
    return "below" if c and max(c) < edge else "above" if c and min(c) > edge else "around"


def remedies(page) -> None:
    title = "Remedies — clipping, gated cells, initialisations, the adding problem"
    if _missing(page, RM, title):
        return
    m = page.json(RM)
    models = m["adding"]["models"].items()
    page.render("remedies.md.j2", title=title, m=m, n=page.reader(RM),
                solved=[k for k, r in models if r["solved_seeds"] == r["num_seeds"]],
                partly=[k for k, r in models if 0 < r["solved_seeds"] < r["num_seeds"]],
                never=[k for k, r in models if r["solved_seeds"] == 0])


def flossing(page) -> None:
    title = "Gradient flossing — Lyapunov exponents pushed to zero (Engelken 2023), on the delayed recall of one bit"
    if _missing(page, FL, title):
        return
    m, n = page.json(FL), page.reader(FL)
    page.render("flossing.md.j2", title=title, m=m, n=n, c=page.reader(FL, "config", fmt="{}"),
                g=page.reader(FL, "gradient_choice"), sp=page.reader(FL, "spectra"), conditions=CONDITIONS,
                last=len(m["delays"]) - 1)


def timings(page) -> None:
    rows = []
    for file, label in ((S1, "stock_forecast"), (SV, "stock_variants"), (S2, "gradient_stability"),
                        (SP, "gradient_spectra"), (RM, "remedies"), (FL, "flossing")):
        if page.has(file):
            m = page.json(file)
            if "timings_s" in m and "total" in m["timings_s"]:
                rows.append((label, file, ("timings_s", "total")))
            elif "wall_s" in m:
                rows.append((label, file, ("wall_s",)))
    page.render("timings.md.j2", rows=rows)


# ------------------------------------------------------------------------------ the second draw

def draw_files(name: str) -> tuple[str, str]:
    """The first and second draw's ``metrics.json`` of experiment ``name`` (``OUT/<name>.base1``: reproduce's
    second draw)."""
    from experiments.reproduce import SECOND_BASE

    return f"{name}/metrics.json", f"{name}.base{SECOND_BASE}/metrics.json"


def verdict_pairs(first: dict, second: dict) -> list[tuple[int, int | None, bool]]:
    """``(i, j, same)``: verdict ``i`` of the first draw, the second draw's verdict ``j`` with the same ``id``
    (None where it has none) and whether both say the same word."""
    where = {v["id"]: j for j, v in enumerate(second["verdicts"])}
    rows = []
    for i, v in enumerate(first["verdicts"]):
        j = where.get(v["id"])
        rows.append((i, j, j is not None and second["verdicts"][j]["verdict"] == v["verdict"]))
    return rows


def draws(page, names) -> list[tuple]:
    """``(name, rows, n0, n1, agree)`` for each experiment of ``names`` whose two draws are both in OUT."""
    found = []
    for name in names:
        f0, f1 = draw_files(name)
        if not (page.has(f0) and page.has(f1)):
            continue
        first, second = page.json(f0), page.json(f1)
        if "verdicts" not in first or "verdicts" not in second:
            continue
        rows = verdict_pairs(first, second)
        found.append((name, rows, page.reader(f0, "verdicts"), page.reader(f1, "verdicts"),
                      sum(same for *_, same in rows)))
    return found


def second_draw(page) -> None:
    from experiments.reproduce import SECOND_BASE, STAGES

    found = draws(page, [s.name for s in STAGES])
    if found:  # a run without a second draw (the report tier, --only) has no section
        page.render("second_draw.md.j2", experiments=found, base=SECOND_BASE)


SECTIONS = (experiment1, experiment2, gradient_spectra, remedies, flossing, second_draw, timings)


if __name__ == "__main__":
    from experiments import _cli

    def main(argv):
        _cli.Parser("report_sections", __doc__ + "\nNot a command of its own: the page is built by "
                    "`python -m experiments.report OUT` (or the main job, `python -m experiments.reproduce`).",
                    ).parse_args(argv)
        print("report_sections: the sections of the results page; build the page with "
              "`python -m experiments.report OUT` (see --help)")

    _cli.run_as_command(main, "report_sections")
