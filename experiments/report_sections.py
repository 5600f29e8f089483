"""The sections of the results page, one function each; every number goes through ``Page.num``.

Each section reads one experiment's ``metrics.json`` (written last by the experiment, so its
presence means that experiment completed) and skips itself with a note when it is missing. The
sentence builders (``dm_verdict``, ``claim_measured``, ...) are shared with the generated blocks
of the documentation (:mod:`experiments.report_docs`), so page and docs say the same thing.
"""

from __future__ import annotations

from experiments.report import s_, span
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


# ------------------------------------------------------------------------------- shared sentences

def spread(n, key: str, fmt: str = "{:.2f}", *, lo: str | None = None, hi: str | None = None) -> str:
    """``"mean (min–max)"`` of ``key`` and ``key_min`` / ``key_max``; the mean alone when the ends read the same."""
    mean, a, b = (n(k, fmt=fmt) for k in (key, lo or f"{key}_min", hi or f"{key}_max"))
    return mean if a == b else f"{mean} ({a}–{b})"


def dm_span(n, key: str, fmt: str, **kw) -> str:
    """``min–max`` over the seeds of Experiment 1's ``dm_vs_persistence.<key>_min`` / ``<key>_max``, formatted."""
    return span(*(n("dm_vs_persistence", f"{key}_{end}", fmt=fmt, **kw) for end in ("min", "max")))


def dm_verdict(n, seeds: int, basis: str) -> str:
    """The verdict against persistence and what it rests on; ``n`` reads one Experiment 1 metrics dict."""
    verdict = f"**{n('verdict_vs_persistence', fmt='{}')}**"
    if basis == "none":
        return f"{verdict}: no seed finished with finite forecasts, so there is nothing to compare."
    test = (f"HAC Diebold–Mariano (Newey–West long-run variance, {dm_span(n, 'lags', '{}')} lags by the Newey–West "
            "1994 rule, HLN factor, t(M−1))")
    ratio, r1 = dm_span(n, "rmse_ratio", "{:.3g}"), dm_span(n, "lag1_autocorr", "{:.3f}")
    p = dm_span(n, "p_value", "{:.2g}", missing="—")
    if basis == "rmse ratio":
        over = "its one seed" if seeds == 1 else f"the {seeds} seeds"
        return (f"{verdict}, judged by the error ratio alone: the test RMSE is {ratio} times persistence's over "
                f"{over}. No Diebold–Mariano test is reliable here: the loss differential's lag-1 "
                f"autocorrelation is {r1} (the errors trend with the price), so one test period cannot give its "
                f"long-run variance; the {test} says p = {p}, and that is not evidence.")
    if basis == "diebold-mariano":
        return (f"{verdict} by a {test} at 5%: {n('dm_vs_persistence', 'seeds_significantly_worse', fmt='{}')} of "
                f"{seeds} seeds significantly worse, {n('dm_vs_persistence', 'seeds_significantly_better', fmt='{}')} "
                f"significantly better (p = {p}; lag-1 autocorrelation of the loss differential {r1}; RMSE "
                f"{ratio} times persistence's).")
    reliable = n.get("dm_vs_persistence", "seeds_reliable")
    return (f"{verdict}: {n('dm_vs_persistence', 'seeds_reliable', fmt='{}')} seed{s_(reliable)} judged by a {test} "
            "at 5% "
            f"(p = {p}), {n('dm_vs_persistence', 'seeds_unreliable', fmt='{}')} by the error ratio, their loss "
            f"differential being too persistent for any DM test (lag-1 autocorrelation up to "
            f"{n('dm_vs_persistence', 'lag1_autocorr_max', fmt='{:.3f}')}); RMSE {ratio} times persistence's.")


def dm_cell(n, basis: str) -> str:
    """A short table cell: the verdict and its basis."""
    d = lambda *path, fmt: n("dm_vs_persistence", *path, fmt=fmt)
    if basis == "rmse ratio":
        return (f"{n('verdict_vs_persistence', fmt='{}')} (RMSE ratio {dm_span(n, 'rmse_ratio', '{:.3g}')}; "
                f"DM unreliable, r₁ up to {d('lag1_autocorr_max', fmt='{:.3f}')})")
    return (f"{n('verdict_vs_persistence', fmt='{}')} (DM: {d('seeds_significantly_worse', fmt='{}')} worse, "
            f"{d('seeds_significantly_better', fmt='{}')} better; p {dm_span(n, 'p_value', '{:.2g}', missing='—')})")


def claim_measured(n, i: int) -> str:
    """Experiment 2's measured curve for per_rho[i]: median start and end with every seed's, and the trend."""
    starts = ", ".join(n("per_rho", i, "start_per_seed", j, fmt="{:.3g}")
                       for j in range(len(n.get("per_rho", i, "start_per_seed"))))
    end = span(*(n("per_rho", i, f"end_seed_{k}", fmt="{:.3g}") for k in ("min", "max")))
    return (f"median {n('per_rho', i, 'start', fmt='{:.3g}')} → {n('per_rho', i, 'end', fmt='{:.3g}')} "
            f"(seeds start at {starts}; end {end}); {n('per_rho', i, 'trend', fmt='{}')}: "
            f"{n('per_rho', i, 'change_decades', fmt='{:+.2f}')} decades first to last, "
            f"{n('per_rho', i, 'decades', fmt='{:+.2f}')} fitted")


def crossing(n, act: str, length: str) -> str:
    """The rho where lambda_1 = 0 (median over seeds) with the seeds' own crossings."""
    base = ("phase_crossings", act, length)
    if n.get(*base, "rho_lyapunov_zero") is None:
        return f"{act} T={length}: none in the grid"
    text = f"{act} T={length}: rho = {n(*base, 'rho_lyapunov_zero')}"
    lo = n(*base, "rho_lyapunov_zero_seed_min", missing="")
    if lo:
        text += f" (seeds {span(lo, n(*base, 'rho_lyapunov_zero_seed_max'))}"
        text += (f"; {n(*base, 'seeds_without_crossing', fmt='{}')} without one in the grid)"
                 if n.get(*base, "seeds_without_crossing") else ")")
    return text


# ------------------------------------------------------------------------------------------ sections

def experiment1(page) -> None:
    title = "Experiment 1 — next-day stock price (report §3, Table 1, Figures 1–2)"
    if _missing(page, S1, title):
        return
    m = page.json(S1)
    n = page.reader(S1)
    r = page.reader("reference.json", "experiment1")
    seeds = m["seeds"]["count"]
    diverged = [st for st in m["seeds"]["status"] if st["status"] != "ok"]
    page.add(
        f"## {title}", "",
        f"Embedded data `msft.us`: train {n('data', 'train_range', 0, fmt='{}')} .. "
        f"{n('data', 'train_range', 1, fmt='{}')} ({n('data', 'n_train_rows', fmt='{:,}')} closes), "
        f"test {n('data', 'test_range', 0, fmt='{}')} .. {n('data', 'test_range', 1, fmt='{}')} "
        f"({n('data', 'n_test_rows', fmt='{:,}')} closes, every one predicted). Report's settings: "
        f"lookback {n('config', 'lookback', fmt='{}')}, hidden {n('config', 'hidden', fmt='{}')}, tanh, "
        f"last-step loss, full-batch GD lr {n('config', 'lr', fmt='{}')}, {n('config', 'epochs', fmt='{}')} "
        f"epochs, clipping tau = {n('config', 'clip', fmt='{}')}, hand BPTT; {n('seeds', 'count', fmt='{}')} "
        f"seed{s_(seeds)}" + (" in one vmapped program." if seeds > 1 else "."), "",
        "| Table 1 (test set) | RMSE | MAE |",
        "|---|---|---|",
        f"| report (its own ticker, prices {r('price_range_low', fmt='{}')}–{r('price_range_high', fmt='{}')}) "
        f"| {r('rmse')} | {r('mae')} |",
        f"| rnnjax, vanilla RNN ({'one seed' if seeds == 1 else f'mean over {seeds} seeds; min–max'}) | "
        f"{spread(n, 'rmse')} | {spread(n, 'mae')} |",
        f"| persistence baseline (tomorrow = today) | {n('persistence_rmse')} | {n('persistence_mae')} |", "",
        f"Against persistence: {dm_verdict(n, seeds, m['dm_vs_persistence']['basis'])} The test closes "
        f"({n('data', 'test_close_min')}–{n('data', 'test_close_max')}) rise above the train maximum "
        f"({n('data', 'train_close_max')}), the top of the min–max scaler: the report's extrapolation trap.", "",
    )
    if diverged:
        page.add(f"**{len(diverged)} of {seeds} seeds went non-finite** "
                 + ("(every one: the RNN has no RMSE or MAE here, shown as n/a)" if m["rmse"] is None else
                    "(left out of the means above)")
                 + "; `stock_forecast/metrics.json` (`seeds.status`) says at which epoch and in what.", "")
    page.figure("stock_forecast", "fig1_training.png",
                f"*Figure 1.* Training loss and gradient norm per epoch, clipping threshold tau = "
                f"{n('config', 'clip', fmt='{}')} marked. The final mean loss per seed is "
                + ", ".join(n("final_loss_per_seed", i, fmt="{:.2e}")
                            + (" (last finite, then diverged)" if m["seeds"]["status"][i]["status"] != "ok" else "")
                            for i in range(seeds)) + ".")
    if m["rmse"] is None:
        reading = ": no seed gave a finite forecast."
    elif m["rmse"] > m["persistence_rmse"]:
        reading = (": above the train range the forecast cannot follow the price, as the report's 'hugs the mean "
                   "and lags'.")
    else:
        reading = ": below persistence's on average."
    page.figure("stock_forecast", "fig2_forecast.png",
                f"*Figure 2.* Forecast vs actual vs persistence on the test range. The RNN's test RMSE "
                f"{'is' if seeds == 1 else 'averaged over the seeds is'} {n('rmse')} against persistence's "
                f"{n('persistence_rmse')}" + reading)
    variants(page)


def variants(page) -> None:
    if not page.shows("stock_variants"):
        page.add("*Experiment 1's variants (log-returns, a loss at every step, Adam, LSTM, GRU) run with `--all`.*", "")
        return
    if not page.has(SV):
        page.add("*Variants not run (`stock_variants/metrics.json` is missing).*", "")
        return
    v = page.json(SV)["variants"]
    page.add("**Variants** (the report's own list of fixes, and gated cells; same data and split, "
             f"{page.num(SV, 'config', 'seeds', fmt='{}')} seeds each; `docs/stock_forecast.md`):", "",
             "| variant | flags | test RMSE mean (min–max) | persistence | verdict against persistence |",
             "|---|---|---|---|---|")
    for name in v:
        n = page.reader(SV, "variants", name)
        page.add(f"| {n('label', fmt='{}')} | `{n('flags', fmt='{}')}` | {spread(n, 'rmse', '{:.4g}')} | "
                 f"{n('persistence_rmse', fmt='{:.4g}')} | {dm_cell(n, v[name]['dm_vs_persistence']['basis'])} |")
    page.add("")


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


SECTIONS = (experiment1, experiment2, gradient_spectra, remedies, flossing, timings)


if __name__ == "__main__":
    from experiments import _cli

    def main(argv):
        _cli.Parser("report_sections", __doc__ + "\nNot a command of its own: the page is built by "
                    "`python -m experiments.report OUT` (or the main job, `python -m experiments.reproduce`).",
                    ).parse_args(argv)
        print("report_sections: the sections of the results page; build the page with "
              "`python -m experiments.report OUT` (see --help)")

    _cli.run_as_command(main, "report_sections")
