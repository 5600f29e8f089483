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
    n = page.reader(S2)
    page.add(
        f"## {title}", "",
        f"ReLU RNN, hidden {n('config', 'hidden_size', fmt='{}')}, W_hh = rho W with W_ij ~ N(0, σ²), σ = 1/√H "
        "(the report's N(0, 1/√h) read as a standard deviation, so rho is about the spectral radius), SGD lr "
        f"{n('config', 'learning_rate', fmt='{}')}, {n('config', 'num_steps', fmt='{}')} steps on segments of "
        f"{n('config', 'segment_length', fmt='{}')} characters, {len(m['config']['seeds'])} seeds per rho, all in "
        f"one vmapped program. Norm: ||dL/dW_hh||_{n('config', 'norm', fmt='{}')}, the median curve over seeds; "
        "each claim is turned into a test (last column but one) and the test is applied to the median.", "",
        "| rho | the report's claim | measured | test | verdict |",
        "|---|---|---|---|---|",
    )
    for i, c in enumerate(m["claims"]):
        j = next(k for k, e in enumerate(m["per_rho"]) if abs(e["rho"] - c["rho"]) < 1e-9)
        page.add(f"| {n('claims', i, 'rho', fmt='{}')} | {n('claims', i, 'claim', fmt='{}')} | {claim_measured(n, j)} "
                 f"| {n('claims', i, 'test', fmt='{}')} | **{n('claims', i, 'verdict', fmt='{}')}** |")
    page.add("", f"{n('claims_agree', fmt='{}')} of {n('claims_total', fmt='{}')} claims agree with the measurement.",
             "")
    levels = ", ".join(f"rho {n('per_rho', i, 'rho', fmt='{}')}: {n('per_rho', i, 'start')} → "
                       f"{n('per_rho', i, 'end')} ({n('per_rho', i, 'trend', fmt='{}')})"
                       for i in range(len(m["per_rho"])))
    page.figure("gradient_stability", "fig3_grad_norm.png",
                f"*Figure 3.* ||dL/dW_hh|| per training step, log scale, median and min–max band over seeds; first → "
                f"last step of the median: {levels}.{start_spread(n, m)} The axis is the training step, while "
                "vanishing and exploding are about the lag k inside a sequence (next section).")


def start_spread(n, m) -> str:
    """A warning where the seeds' first values are so far apart (a factor 10 or more) that the median misleads."""
    wide = [i for i, e in enumerate(m["per_rho"])
            if e["start_seed_min"] and e["start_seed_max"] / e["start_seed_min"] >= 10]
    return "".join(f" At rho {n('per_rho', i, 'rho', fmt='{}')} the seeds start between "
                   f"{n('per_rho', i, 'start_seed_min', fmt='{:.3g}')} and "
                   f"{n('per_rho', i, 'start_seed_max', fmt='{:.3g}')}: the median's first value describes no seed, "
                   "the band does." for i in wide)


def gradient_spectra(page) -> None:
    title = "Beyond the report — lag profiles, Jacobian spectra, Lyapunov exponents, phase diagram"
    if _missing(page, SP, title):
        return
    m = page.json(SP)
    n = page.reader(SP)
    page.add(
        f"## {title}", "",
        "The report's §4.1 bound, ||dL_T/dh_{T-k}|| <= (gamma ||W_hh||_2)^k ||dL_T/dh_T||, against what the "
        "Jacobian products (`jax.jacfwd`) actually do, for the ReLU network of Experiment 2 at initialisation "
        "(W's entries with σ = 1/√H):", "",
        "| rho | top Lyapunov exponent, median (seed range), nats/step | lag-profile slope | log10 gradient ratio at "
        "the longest lag | log10 of the bound there | verdict |",
        "|---|---|---|---|---|---|",
    )
    for i, _ in enumerate(m["per_rho"]):
        page.add(f"| {n('per_rho', i, 'rho', fmt='{}')} | {n('per_rho', i, 'lyapunov_top_median', fmt='{:.3f}')} "
                 f"({n('per_rho', i, 'lyapunov_top_seed_min', fmt='{:.3f}')} to "
                 f"{n('per_rho', i, 'lyapunov_top_seed_max', fmt='{:.3f}')}) "
                 f"| {n('per_rho', i, 'lag_profile_slope', fmt='{:.3f}')} "
                 f"| {n('per_rho', i, 'log10_grad_ratio_at_max_lag', fmt='{:.1f}')} "
                 f"| {n('per_rho', i, 'log10_bound_at_max_lag', fmt='{:.1f}')} "
                 f"| {n('per_rho', i, 'verdict', fmt='{}')} |")
    page.add("", variance_reading(n, m), "")
    page.figure("gradient_spectra", "fig4_lag_profile.png",
                "*Figure 4.* ||dL_T/dh_{T-k}|| against the lag k per rho, with the report's bound. The bound holds "
                f"but is loose by {n('bound_over_measured_decades_min', fmt='{:.1f}')} to "
                f"{n('bound_over_measured_decades_max', fmt='{:.1f}')} decades at the longest lag over the three "
                "rho; the measured slope tracks the top Lyapunov exponent.")
    page.figure("gradient_spectra", "fig5_jacobian_spectra.png",
                "*Figure 5.* Singular values of the products of k step Jacobians, per rho. Verdict along the lag: "
                + ", ".join(f"rho {n('per_rho', i, 'rho', fmt='{}')} {n('per_rho', i, 'verdict', fmt='{}')}"
                            for i in range(len(m["per_rho"]))) + ".")
    pc = m["phase_crossings"]
    cross = [crossing(n, act, length) for act in ("relu", "tanh") for length in pc[act] if length.isdigit()]
    page.figure("gradient_spectra", "fig6_phase_diagram.png",
                f"*Figure 6.* Top Lyapunov exponent over rho (median over seeds): vanishing turns into exploding "
                f"where it crosses zero ({'; '.join(cross)}). For ReLU the mean-field, large-H edge is rho = √2 ≈ "
                f"{n('relu_mean_field_edge')} "
                f"(half the units off on average); at H = {n('config', 'hidden', fmt='{}')} the median crossing lies "
                f"{_side(m)} it, and each seed crosses elsewhere (in brackets). The tanh crossing moves with T: at "
                "short T it is a transient of "
                "the start state (h_0 = 0 here), not the long-run edge. The report's criterion gamma ||W_hh||_2 = 1 "
                f"sits at rho = {n('phase_crossings', 'relu', 'rho_bound_rate_one')}, the spectral radius reaches 1 "
                f"at rho = {n('phase_crossings', 'relu', 'rho_spectral_radius_one')}.")


def _side(m) -> str:
    """Where ReLU's median crossings lie against the mean-field edge sqrt 2: 'below', 'above' or 'around'."""
    pc = m["phase_crossings"]["relu"]
    c = [pc[t]["rho_lyapunov_zero"] for t in pc if t.isdigit() and pc[t]["rho_lyapunov_zero"] is not None]
    edge = m["relu_mean_field_edge"]
    return "below" if c and max(c) < edge else "above" if c and min(c) > edge else "around"


def variance_reading(n, m) -> str:
    """What the verdicts become under the other reading of the report's W_hh (variance 1/sqrt(H))."""
    v = m["variance_reading"]
    values = ", ".join(f"{n('variance_reading', 'lyapunov_top_median', i, fmt='{:+.2f}')} "
                       f"({n('variance_reading', 'lyapunov_top_seed_min', i, fmt='{:+.2f}')} to "
                       f"{n('variance_reading', 'lyapunov_top_seed_max', i, fmt='{:+.2f}')})"
                       for i in range(len(v["rhos"])))
    verdicts = sorted(set(v["verdict"]) - {None})
    verb = {"exploding": "explode", "vanishing": "vanish"}
    words = (f"all {len(v['rhos'])} {verb[verdicts[0]]}" if len(verdicts) == 1 else "mixed verdicts")
    return ("These verdicts rest on reading the report's N(0, 1/√h) as a standard deviation. Read as a variance, "
            f"every weight is {n('variance_reading', 'scale', fmt='{:.2f}')} times larger (σ = H^(−1/4)), the same "
            "as rho = " + ", ".join(n("variance_reading", "effective_rhos", i, fmt="{:.2f}")
                                   for i in range(len(v["rhos"])))
            + f" here, and the top Lyapunov exponents over one {n('variance_reading', 'length', fmt='{}')}-step "
            f"segment are {values} nats/step (median, seed range): {words}.")


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
