"""The sections of the results page, one function each; every number goes through ``Page.num``.

Each section reads one experiment's ``metrics.json`` (written last by the experiment, so its
presence means that experiment completed) and skips itself with a note when it is missing.
"""

from __future__ import annotations

S1, S2, SP, RM, FL = (f"{name}/metrics.json" for name in
                      ("stock_forecast", "gradient_stability", "gradient_spectra", "remedies", "flossing"))


def _missing(page, file: str, title: str) -> bool:
    if page.has(file):
        return False
    page.add(f"## {title}", "", f"*Not run: `{file}` is missing (run without `--only`).*", "")
    return True


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
        f"seed(s) in one vmapped program.", "",
        "| Table 1 (test set) | RMSE | MAE |",
        "|---|---|---|",
        f"| report (its own ticker, prices {r('price_range_low', fmt='{}')}–{r('price_range_high', fmt='{}')}) "
        f"| {r('rmse')} | {r('mae')} |",
        f"| rnnjax, vanilla RNN (mean over {seeds} seeds; min–max) | {n('rmse')} ({n('rmse_min')}–{n('rmse_max')}) "
        f"| {n('mae')} ({n('mae_min')}–{n('mae_max')}) |",
        f"| persistence baseline (tomorrow = today) | {n('persistence_rmse')} | {n('persistence_mae')} |", "",
        f"Verdict against persistence (Diebold–Mariano, 5%): **{n('verdict_vs_persistence', fmt='{}')}** — "
        f"{n('dm_vs_persistence', 'seeds_significantly_worse', fmt='{}')} of {seeds} seeds significantly worse, "
        f"{n('dm_vs_persistence', 'seeds_significantly_better', fmt='{}')} significantly better. The test "
        f"closes ({n('data', 'test_close_min')}–{n('data', 'test_close_max')}) rise above the train maximum "
        f"({n('data', 'train_close_max')}), the top of the min–max scaler: the report's extrapolation trap. "
        "Variants (log-returns, a loss at every step, Adam) are compared in `docs/stock_forecast.md`.", "",
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
                f"*Figure 2.* Forecast vs actual vs persistence on the test range. The RNN's test RMSE is "
                f"{n('rmse')} against persistence's {n('persistence_rmse')}" + reading)


def experiment2(page) -> None:
    title = "Experiment 2 — gradient norm vs spectral radius (report §5, Figure 3)"
    if _missing(page, S2, title):
        return
    m = page.json(S2)
    n = page.reader(S2)
    page.add(
        f"## {title}", "",
        f"ReLU RNN, hidden {n('config', 'hidden_size', fmt='{}')}, W_hh = rho x N(0, 1/H), SGD lr "
        f"{n('config', 'learning_rate', fmt='{}')}, {n('config', 'num_steps', fmt='{}')} steps on segments of "
        f"{n('config', 'segment_length', fmt='{}')} characters, {len(m['config']['seeds'])} seeds per rho, all in "
        f"one vmapped program. Norm plotted: ||dL/dW_hh||_{n('config', 'norm', fmt='{}')} (median over seeds).", "",
        "| rho | the report's claim | measured | verdict |",
        "|---|---|---|---|",
    )
    for i, _ in enumerate(m["claims"]):
        page.add(f"| {n('claims', i, 'rho', fmt='{}')} | {n('claims', i, 'claim', fmt='{}')} | "
                 f"{n('claims', i, 'measured', fmt='{}')} | **{n('claims', i, 'verdict', fmt='{}')}** |")
    page.add("", f"{n('claims_agree', fmt='{}')} of {n('claims_total', fmt='{}')} claims agree with the measurement.",
             "")
    levels = ", ".join(f"rho {n('per_rho', i, 'rho', fmt='{}')}: {n('per_rho', i, 'start')} → "
                       f"{n('per_rho', i, 'end')} ({n('per_rho', i, 'trend', fmt='{}')})"
                       for i in range(len(m["per_rho"])))
    page.figure("gradient_stability", "fig3_grad_norm.png",
                f"*Figure 3.* ||dL/dW_hh|| per training step, log scale, median and band over seeds; first → last "
                f"step and fitted trend: {levels}. The axis is the training step, while vanishing and exploding "
                "are about the lag k inside a sequence (next section).")


def gradient_spectra(page) -> None:
    title = "Beyond the report — lag profiles, Jacobian spectra, Lyapunov exponents, phase diagram"
    if _missing(page, SP, title):
        return
    m = page.json(SP)
    n = page.reader(SP)
    page.add(
        f"## {title}", "",
        "The report's §4.1 bound, ||dL_T/dh_{T-k}|| <= (gamma ||W_hh||_2)^k ||dL_T/dh_T||, against what the "
        "Jacobian products (`jax.jacfwd`) actually do, for the ReLU network of Experiment 2 at initialisation:", "",
        "| rho | top Lyapunov exponent (nats/step) | lag-profile slope | log10 gradient ratio at the longest lag "
        "| log10 of the bound there | verdict |",
        "|---|---|---|---|---|---|",
    )
    for i, _ in enumerate(m["per_rho"]):
        page.add(f"| {n('per_rho', i, 'rho', fmt='{}')} | {n('per_rho', i, 'lyapunov_top_median', fmt='{:.3f}')} "
                 f"| {n('per_rho', i, 'lag_profile_slope', fmt='{:.3f}')} "
                 f"| {n('per_rho', i, 'log10_grad_ratio_at_max_lag', fmt='{:.1f}')} "
                 f"| {n('per_rho', i, 'log10_bound_at_max_lag', fmt='{:.1f}')} "
                 f"| {n('per_rho', i, 'verdict', fmt='{}')} |")
    page.add("")
    page.figure("gradient_spectra", "fig4_lag_profile.png",
                "*Figure 4.* ||dL_T/dh_{T-k}|| against the lag k per rho, with the report's bound. The bound holds "
                f"but is loose by {n('per_rho', 0, 'bound_over_measured_decades_at_max_lag', fmt='{:.0f}')} decades "
                f"at rho {n('per_rho', 0, 'rho', fmt='{}')}; the measured slope tracks the top Lyapunov exponent.")
    page.figure("gradient_spectra", "fig5_jacobian_spectra.png",
                "*Figure 5.* Singular values of the products of k step Jacobians, per rho. Verdict along the lag: "
                + ", ".join(f"rho {n('per_rho', i, 'rho', fmt='{}')} {n('per_rho', i, 'verdict', fmt='{}')}"
                            for i in range(len(m["per_rho"]))) + ".")
    pc = m["phase_crossings"]
    cross = []
    for act in ("relu", "tanh"):
        for length in (k for k in pc[act] if k.isdigit()):
            if pc[act][length]["rho_lyapunov_zero"] is not None:
                cross.append(f"{act} T={length}: rho = "
                             f"{n('phase_crossings', act, length, 'rho_lyapunov_zero')}")
    where = "; ".join(cross) if cross else "no crossing inside the grid"
    page.figure("gradient_spectra", "fig6_phase_diagram.png",
                f"*Figure 6.* Top Lyapunov exponent over rho: vanishing turns into exploding where it crosses zero "
                f"({where}). The report's criterion gamma ||W_hh||_2 = 1 sits at rho = "
                f"{n('phase_crossings', 'relu', 'rho_bound_rate_one')}, the spectral radius reaches 1 at rho = "
                f"{n('phase_crossings', 'relu', 'rho_spectral_radius_one')}.")


def remedies(page) -> None:
    title = "Remedies — clipping, gated cells, initialisations, the adding problem"
    if _missing(page, RM, title):
        return
    m = page.json(RM)
    n = page.reader(RM)
    page.add(
        f"## {title}", "",
        f"**Clipping** (Experiment 2's ReLU net, rho = {n('clipping', 'rho', fmt='{}')}, "
        f"{n('clipping', 'steps', fmt='{}')} SGD steps):", "",
        "| lr | clipping tau | finite | first non-finite step | fraction of steps clipped | final loss |",
        "|---|---|---|---|---|---|",
    )
    for i, run in enumerate(m["clipping"]["runs"]):
        step = n("clipping", "runs", i, "first_nonfinite_step", fmt="{}") if run["first_nonfinite_step"] is not None \
            else "—"
        tau = n("clipping", "runs", i, "clip_norm", fmt="{}") if run["clip_norm"] is not None else "none"
        final = n("clipping", "runs", i, "final_loss", fmt="{:.3g}") if run.get("final_loss") is not None \
            else "— (diverged)"
        page.add(f"| {n('clipping', 'runs', i, 'lr', fmt='{}')} | {tau} "
                 f"| {'yes' if run['finite'] else 'no'} "
                 f"| {step} | {n('clipping', 'runs', i, 'fraction_clipped')} "
                 f"| {final} |")
    page.add("")
    page.figure("remedies", "fig7_clipping.png",
                "*Figure 7.* Loss and gradient norm with and without global-norm clipping: clipping keeps the "
                "large-lr runs finite; it bounds the step, it does not change where the gradient comes from.")
    a = m["adding"]
    page.add(
        f"**The adding problem** (T = {n('adding', 'T', fmt='{}')}, {n('adding', 'steps', fmt='{}')} Adam steps, "
        f"clipping {n('adding', 'clip_norm', fmt='{}')}; the constant predictor scores "
        f"{n('adding', 'baseline_mse_on_test_set', fmt='{:.4f}')} on the test set, 1/6 in expectation):", "",
        "| model | test MSE (mean over seeds) | min–max | seeds reaching MSE < 0.01 | median steps to get there |",
        "|---|---|---|---|---|",
    )
    for name in a["models"]:
        steps = a["models"][name]["median_steps_to_mse_0.01"]
        steps = n("adding", "models", name, "median_steps_to_mse_0.01", fmt="{:.0f}") if steps is not None else "—"
        page.add(f"| {name} | {n('adding', 'models', name, 'test_mse_mean', fmt='{:.4f}')} | "
                 f"{n('adding', 'models', name, 'test_mse_min', fmt='{:.4f}')}–"
                 f"{n('adding', 'models', name, 'test_mse_max', fmt='{:.4f}')} | "
                 f"{n('adding', 'models', name, 'solved_seeds', fmt='{}')}/"
                 f"{n('adding', 'models', name, 'num_seeds', fmt='{}')}"
                 f" | {steps} |")
    page.add("")
    lp = m["lag_profiles"]["models"]
    gains = "; ".join(f"{name} {n('lag_profiles', 'models', name, 'init', 'log10_gain_state', fmt='{:.1f}')} → "
                      f"{n('lag_profiles', 'models', name, 'trained', 'log10_gain_state', fmt='{:.1f}')}"
                      for name in lp)
    page.figure("remedies", "fig8_lag_profiles_by_cell.png",
                f"*Figure 8.* ||dL_T/ds_{{T-k}}|| by cell, at initialisation and after training. log10 of the gain "
                f"over the whole sequence, init → trained: {gains}.")
    half = a["baseline_mse"] / 2
    left = [k for k, v in a["models"].items() if v["test_mse_mean"] is not None and v["test_mse_mean"] < half]
    stayed = [k for k in a["models"] if k not in left]
    page.figure("remedies", "fig9_adding_problem.png",
                "*Figure 9.* Test MSE per step on the adding problem (log scale) with the 1/6 baseline. Below half "
                f"the baseline at the end: {', '.join(left) or 'none'}; at or near it: {', '.join(stayed) or 'none'}.")


def flossing(page) -> None:
    title = "Gradient flossing — Lyapunov exponents pushed to zero (Engelken 2023), on the delayed recall of one bit"
    if _missing(page, FL, title):
        return
    m = page.json(FL)
    n = page.reader(FL)
    c = lambda *path, fmt="{}": n("config", *path, fmt=fmt)
    page.add(
        f"## {title}", "",
        f"A vanilla tanh RNN (hidden {c('hidden')}, W_hh = rho x N(0, 1/H), rho {c('rho')}) must output at the last "
        f"of T = {c('length')} steps a bit +-1 it saw d steps earlier, while a second input channel carries Gaussian "
        f"noise (std {c('noise')}). One bit, so the task measures how far back the gradient reaches, not memory "
        f"capacity. {c('seeds')} seeds per delay, all seeds and delays in one vmapped program, the same batches for "
        f"every condition: {c('steps')} Adam steps (lr {c('lr')}, clipping 1, batch {c('batch')}). (b) first flosses "
        f"the top {c('num')} exponents for {c('floss_steps')} Adam steps (lr {c('floss_lr')}, `rnnjax.floss`); "
        f"(c) also adds {c('floss_weight')} x the flossing loss every {c('floss_every')} training steps "
        f"(`fit(regularizer=...)`). Success: held-out accuracy >= {c('threshold')}.", "",
        "| delay d | (a) plain: solved | (b) flossing before | (c) before and during | mean test MSE (a / b / c) |",
        "|---|---|---|---|---|",
    )
    conds = ("plain", "floss_before", "floss_before_and_during")
    for i, _ in enumerate(m["delays"]):
        cells = [f"{n('conditions', k, 'per_delay', i, 'solved_seeds', fmt='{}')}/{c('seeds')}" for k in conds]
        mses = " / ".join(n("conditions", k, "per_delay", i, "test_mse_mean", fmt="{:.3f}")
                          if m["conditions"][k]["per_delay"][i]["test_mse_mean"] is not None else "—" for k in conds)
        page.add(f"| {n('delays', i, fmt='{}')} | {' | '.join(cells)} | {mses} |")
    bridge = " / ".join(n("conditions", k, "bridgeable_delay", fmt="{}") if m["conditions"][k]["bridgeable_delay"]
                        is not None else "none" for k in conds)
    cost = page.reader(FL, "cost")
    page.add(
        "", f"**Verdict: {n('verdict', 'text', fmt='{}')}** (largest delay solved by at least half the seeds, "
        f"(a) / (b) / (c): {bridge}; the longest tried was {n('verdict', 'largest_delay_tried', fmt='{}')}). "
        f"Cost in time on this machine (compilation excluded): plain training {cost('plain_s', fmt='{:.1f}')} s; "
        f"flossing plus training {cost('floss_before_s', fmt='{:.1f}')} s for (b) "
        f"({cost('floss_before_ratio', fmt='{:.2f}')}x) and {cost('floss_before_and_during_s', fmt='{:.1f}')} s for "
        f"(c) ({cost('floss_before_and_during_ratio', fmt='{:.2f}')}x).", "",
    )
    sp = page.reader(FL, "spectra")
    d_max = n("verdict", "largest_delay_tried", fmt="{}")
    last = len(m["delays"]) - 1
    lam1 = ", ".join(f"({x}) {n('conditions', k, 'per_delay', last, 'lambda1_mean', fmt='{:.3f}')}"
                     for x, k in zip("abc", conds, strict=True))
    page.figure("flossing", "fig10_flossing_delay.png",
                "*Figure 10.* Fraction of seeds solving the recall, and held-out MSE (dots: seeds), against the delay.")
    page.figure("flossing", "fig11_flossing_spectra.png",
                f"*Figure 11.* Lyapunov spectra on a fixed noise probe (mean over seeds, band min–max). Flossing moves "
                f"lambda_1 from {sp('init', 'lambda1_mean', fmt='{:.3f}')} to "
                f"{sp('flossed', 'lambda1_mean', fmt='{:.3f}')} and lambda_{c('num')} from "
                f"{sp('init', 'lambda_num_mean', fmt='{:.3f}')} to {sp('flossed', 'lambda_num_mean', fmt='{:.3f}')} "
                f"nats/step (the flossing loss {sp('flossed', 'floss_loss_first_mean', fmt='{:.3f}')} → "
                f"{sp('flossed', 'floss_loss_last_mean', fmt='{:.3f}')}); log10 of the condition number "
                f"sigma_1/sigma_{c('num')} of the {c('length')}-step Jacobian (T (lambda_1 - lambda_num) / ln 10) "
                f"from {sp('init', 'log10_cond_mean', fmt='{:.1f}')} to "
                f"{sp('flossed', 'log10_cond_mean', fmt='{:.1f}')}. After training at d = {d_max}, mean lambda_1: "
                f"{lam1}.")
    mon = "; ".join(f"({x}) {n('conditions', k, 'monitor_lambda1_first_mean', fmt='{:.3f}')} → "
                    f"{n('conditions', k, 'monitor_lambda1_last_mean', fmt='{:.3f}')}"
                    for x, k in zip("abc", conds, strict=True))
    page.figure("flossing", "fig12_flossing_monitor.png",
                "*Figure 12.* The top four exponents recorded by `fit`'s monitor every "
                f"{c('monitor_every')} steps inside the jitted run, at d = {d_max}. Mean lambda_1, first → last "
                f"record: {mon}.")
    g = page.reader(FL, "gradient_choice")
    page.add(
        f"**Which gradient flosses** (`rnnjax.floss`'s default): {g('seeds', fmt='{}')} edge-of-chaos tanh networks "
        f"(rho {g('rho', fmt='{}')}, input weights x {g('input_scale', fmt='{}')}, hidden {g('hidden', fmt='{}')}, "
        f"T = {g('T', fmt='{}')}), the top {g('num', fmt='{}')} exponents flossed for {g('steps', fmt='{}')} Adam "
        f"steps (lr {g('lr', fmt='{}')}); sum lambda_i^2 re-measured on the final parameters:", "",
        "| gradient | smallest reduction | median reduction | seeds >= 5x | seeds made worse |",
        "|---|---|---|---|---|",
    )
    for mode in m["gradient_choice"]["gradients"]:
        page.add(f"| {mode} | {g('gradients', mode, 'min_reduction', fmt='{:.3g}')}x "
                 f"| {g('gradients', mode, 'median_reduction', fmt='{:.3g}')}x "
                 f"| {g('gradients', mode, 'seeds_at_least_5x', fmt='{}')}/{g('seeds', fmt='{}')} "
                 f"| {g('gradients', mode, 'seeds_worse', fmt='{}')} |")
    page.add("", f"Best here: **{g('best', fmt='{}')}**; `floss` defaults to {g('floss_default', fmt='{}')}.", "")
    page.figure("flossing", "fig13_flossing_gradients.png",
                "*Figure 13.* sum lambda_i^2 during flossing, per gradient (median over seeds, quartile band). In a "
                "chaotic network the exact gradient of a finite-time exponent grows like exp(lambda_1 T) "
                "(`docs/flossing.md`).")


def timings(page) -> None:
    rows = []
    for file, label in ((S1, "stock_forecast"), (S2, "gradient_stability"), (SP, "gradient_spectra"),
                        (RM, "remedies"), (FL, "flossing")):
        if not page.has(file):
            continue
        m = page.json(file)
        if "timings_s" in m and "total" in m["timings_s"]:
            rows.append(f"| {label} | {page.num(file, 'timings_s', 'total', fmt='{:.1f}')} |")
        elif "wall_s" in m:
            rows.append(f"| {label} | {page.num(file, 'wall_s', fmt='{:.1f}')} |")
    if rows:
        page.add("## Run times (seconds, this run)", "", "| experiment | wall time |", "|---|---|", *rows, "")


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
