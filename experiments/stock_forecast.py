"""Experiment 1 (report §3): next-day closing price with a vanilla RNN, beside the persistence baseline.

    python -m experiments.stock_forecast [--seeds 4] [--target returns] [--loss many-to-many]
                                         [--optimizer adam] [--ticker aapl.us | --csv FILE] [--out DIR]

Defaults are the report's run: 80/20 temporal split, min-max scaling fitted on train, windows of
20 closes -> the next close, RNN with 16 tanh units and a linear output, loss 0.5 (o_T - y)^2 on
the last step, hand BPTT over the full batch, SGD lr 0.01, 300 epochs, global-norm clipping at 5.
Data: the embedded ``msft.us`` (1986-2017) unless ``--ticker`` (Stooq; needs an API key, from
``--apikey`` or ``$STOOQ_APIKEY``) or ``--csv`` is given. ``--seeds N`` trains N initialisations
in one vmapped program. Writes ``history.csv``, ``predictions.csv``, ``train_tail.csv``,
``fig1_training.png``, ``fig2_forecast.png`` and, last, ``metrics.json`` under ``--out``.
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()

import argparse  # noqa: E402
import importlib  # noqa: E402
import math  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from experiments import _cli  # noqa: E402
from experiments.job import start  # noqa: E402
from rnnjax import forecast, stats  # noqa: E402
from rnnjax.bptt import resolve_method  # noqa: E402
from rnnjax.cells import CELLS, get_cell  # noqa: E402
from rnnjax.data.prices import load_price_data, make_forecast_data, values_to_prices  # noqa: E402
from rnnjax.io import write_csv, write_json  # noqa: E402
from rnnjax.scan import init_model, make_loss, predict  # noqa: E402
from rnnjax.train import (  # noqa: E402
    TrainHistory,
    describe_nonfinite,
    first_nonfinite_step,
    fit,
    make_optimizer,
    spectral_norm,
)

_IMPORT_S = time.perf_counter() - _T_START

LOSS_MODES = {"many-to-one": "mse_last", "mse_last": "mse_last", "many-to-many": "mse", "mse": "mse"}
QUICK_EPOCHS = 20
TAIL_DAYS = 500  # train days drawn before the test range in Figure 2
MIN_TEST_WINDOWS = 3  # the metrics' least: a lag-1 autocorrelation and a t(M - 1) p-value of the DM test
PRICE_RANGE = (1e-100, 1e100)  # closes whose squared errors (the DM test's loss) are normal float64 numbers
YEAR_RANGE = (1000, 9000)  # dates the figures can show (matplotlib: years 1-9999, with margins)


TICKER_ONLY = ("apikey", "cache_dir", "stooq_url", "timeout", "deadline", "retries", "refresh")  # Stooq flags


def build_parser() -> argparse.ArgumentParser:
    p = _cli.Parser("stock_forecast", __doc__)
    src = p.add_argument_group("data source (default: the embedded msft.us)")
    one = src.add_mutually_exclusive_group()
    one.add_argument("--ticker", help="Stooq ticker, e.g. aapl.us (fetched and cached)")
    one.add_argument("--csv", type=Path, help="local CSV with a date and a close column")
    src.add_argument("--date-format", help="strftime format of the CSV's dates, e.g. '%%d/%%m/%%Y'; needed when "
                     "dates such as 01/02/2000 could be day-first or month-first")
    src.add_argument("--drop-invalid", action="store_true",
                     help="drop rows with bad dates or missing/non-positive/infinite closes instead of failing")
    st = p.add_argument_group("Stooq (only with --ticker)")
    st.add_argument("--apikey", help="Stooq API key (default: $STOOQ_APIKEY); never logged or saved")
    st.add_argument("--cache-dir", type=Path, help="Stooq cache (default: $RNNJAX_CACHE or ~/.cache/rnnjax)")
    st.add_argument("--stooq-url", default=None, help="Stooq server root (default: https://stooq.com)")
    st.add_argument("--timeout", type=_cli.number(float, min=0, min_open=True, max=3600),
                    help="seconds allowed for each attempt, in total (default: 20)")
    st.add_argument("--deadline", type=_cli.number(float, min=0, min_open=True, max=86400),
                    help="seconds allowed for all attempts and the pauses between them (default: 60)")
    st.add_argument("--retries", type=_cli.number(int, min=0, max=10),
                    help="retries after a timeout, a refused connection or a 5xx answer (default: 3)")
    st.add_argument("--refresh", action="store_true", help="fetch again even when the cache is recent "
                    "(and replace a corrupt cached file)")
    m = p.add_argument_group("model and training (defaults: the report)")
    m.add_argument("--cell", choices=list(CELLS), default="rnn", help="recurrent cell (default: rnn)")
    m.add_argument("--target", choices=("price", "returns"), default="price",
                   help="predict the next close, or the next log-return and rebuild the close (default: price)")
    m.add_argument("--loss", choices=sorted(LOSS_MODES), default="many-to-one",
                   help="many-to-one = mse_last, 0.5 (o_T - y)^2; many-to-many = mse at every step "
                        "(default: many-to-one)")
    m.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="default: sgd (full batch)")
    m.add_argument("--lookback", type=_cli.number(int, min=1, max=10_000), default=20,
                   help="window length (default: 20)")
    m.add_argument("--train-fraction", type=_cli.number(float, min=0, max=1, min_open=True, max_open=True),
                   default=0.8, help="temporal split (default: 0.8)")
    m.add_argument("--hidden", type=_cli.positive_int, default=16, help="hidden units (default: 16)")
    m.add_argument("--activation", choices=("tanh", "sigmoid", "relu", "linear"), default=None,
                   help="the vanilla cell's non-linearity (default: tanh; --cell rnn only)")
    m.add_argument("--lr", type=_cli.learning_rate, default=0.01, help="learning rate (default: 0.01)")
    m.add_argument("--epochs", type=_cli.number(int, min=1, max=10**7), default=300,
                   help="full-batch epochs (default: 300)")
    m.add_argument("--clip", type=_cli.number(float, min=0), default=5.0,
                   help="global-norm clipping tau, 0 = none (default: 5)")
    m.add_argument("--method", choices=("bptt", "autograd"), default=None,
                   help="gradients by the hand BPTT or jax.grad (default for rnn: bptt on CPU, autograd on an "
                        "accelerator; autograd for lstm/gru)")
    m.add_argument("--seeds", type=_cli.number(int, min=1, max=10_000), default=4,
                   help="initialisations trained together (default: 4, as in the main job)")
    _cli.add_seed_base(m)  # seed s of base B: fold_in(PRNGKey(B), s)
    p.add_argument("--out", type=Path, help="output folder, replaced as a whole when the run completes "
                   "(default: runs/stock_forecast-<date>-<time>/)")
    _cli.add_force(p)
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK_EPOCHS} epochs, for a smoke test (a default: an explicit --epochs wins)")
    return p


def fit_cell_seeds(cell, keys, xs, ys, learning_rate, *, hidden_size, loss, num_steps, optimizer, clip_norm):
    """One model of ``cell`` per key (``rnnjax.init_model``), trained by ``rnnjax.fit`` (jax.grad), vmapped.

    Records what the vanilla ``rnnjax.train`` records, so every cell fills the same
    :class:`rnnjax.TrainHistory` (``grad_whh_*``: the gradient w.r.t. the cell's stacked W_hh).
    """
    D, O = xs.shape[-1], ys.shape[-1]
    opt = make_optimizer(learning_rate, clip_norm=clip_norm, name=optimizer)
    loss_fn = make_loss(cell, loss)
    record = lambda p, g: (jnp.linalg.norm(g.cell.W_hh), spectral_norm(g.cell.W_hh))  # ||dL/dW_hh||_F, _2

    def one(key):
        model, h = fit(loss_fn, init_model(cell, key, D, hidden_size, O), (xs, ys), opt, num_steps=num_steps,
                       record=record)
        clipped = h.grad_norm if clip_norm is None else jnp.minimum(h.grad_norm, clip_norm)  # optax's clip rule
        return model, TrainHistory(h.loss, h.grad_norm, clipped, *h.extra, h.finite)

    return jax.vmap(one)(keys)


@partial(jax.jit, static_argnames=("n_seeds", "options"))
def _program(seed, xs, ys, lr, windows, *, n_seeds: int, options: tuple):
    """Init n_seeds models (keys fold_in(PRNGKey(seed), s)), train them, forecast ``windows``: one program.

    ``options`` name the cell and the gradient: every cell of the registry trains through
    :func:`rnnjax.fit`; for the vanilla cell ``method="bptt"`` makes that gradient its hand BPTT
    (report §2.2, the cell's own), ``"autograd"`` ``jax.grad`` of its scan.
    """
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.PRNGKey(seed), s))(jnp.arange(n_seeds))
    opts = dict(options)
    name, cell_options, method = opts.pop("cell"), dict(opts.pop("cell_options")), opts.pop("method")
    if name == "rnn":
        cell_options["method"] = method
    cell = get_cell(name, **cell_options)
    params, history = fit_cell_seeds(cell, keys, xs, ys, lr, **opts)
    last = lambda m, x: predict(cell, m, x)[-1]  # y_T of one window
    scaled = jax.vmap(lambda m: jax.vmap(lambda x: last(m, x))(windows))(params)
    return history, first_nonfinite_step(history), scaled[..., 0]


def fit_model(cfg: argparse.Namespace, data) -> tuple[dict, dict]:
    """The one place the cell is chosen: train ``cfg.seeds`` models and forecast every window.

    Initialisation (seed s from ``fold_in(PRNGKey(cfg.seed), s)``), training and the forecasts of
    all train and test windows form one compiled program, timed as compile + train. Returns
    ``(results, timings)``; ``results`` holds NumPy arrays: ``history`` (a TrainHistory, (S, E)
    each), ``first_nonfinite`` (S,), and ``forecast_scaled`` (S, M_train + M_test).
    """
    cell_options = () if cfg.activation is None else (("activation", cfg.activation),)
    get_cell(cfg.cell, **dict(cell_options))  # validate: an unknown cell or an option it does not take
    if cfg.cell != "rnn" and cfg.method == "bptt":
        raise ValueError(f"--method bptt is the vanilla RNN's hand BPTT; --cell {cfg.cell} trains with "
                         "--method autograd (the default for gated cells)")
    options = (("hidden_size", cfg.hidden), ("loss", LOSS_MODES[cfg.loss]), ("num_steps", cfg.epochs),
               ("optimizer", cfg.optimizer), ("clip_norm", cfg.clip or None), ("cell", cfg.cell),
               ("cell_options", cell_options), ("method", cfg.method))
    args = (np.int32(cfg.seed), data.x_train[None], data.y_train[None], np.float32(cfg.lr),  # one full batch
            np.concatenate([data.x_train, data.x_test]))
    t0 = time.perf_counter()
    compiled = _program.lower(*args, n_seeds=cfg.seeds, options=options).compile()
    t1 = time.perf_counter()
    history, first_bad, scaled = jax.tree.map(np.asarray, jax.block_until_ready(compiled(*args)))
    results = {"history": history, "first_nonfinite": first_bad, "forecast_scaled": scaled}
    return results, {"compile": t1 - t0, "train": time.perf_counter() - t1}


def _seed_status(history, first_bad) -> list[dict]:
    status = []
    for s, step in enumerate(first_bad):
        message = None if step < 0 else describe_nonfinite(jax.tree.map(lambda a, s=s: a[s], history))
        status.append({"seed": s, "status": "ok" if step < 0 else "nonfinite",
                       "first_nonfinite_step": None if step < 0 else int(step), "message": message})
    return status


def _history_frame(history, status) -> pd.DataFrame:
    """Per-epoch rows of every seed, cut at a diverged seed's first non-finite step."""
    frames = []
    for st in status:
        s, stop = st["seed"], st["first_nonfinite_step"]
        n = history.loss.shape[1] if stop is None else stop
        frames.append(pd.DataFrame({
            "seed": s, "epoch": np.arange(1, n + 1),
            "loss": history.loss[s, :n], "grad_norm": history.grad_norm[s, :n],
            "grad_norm_clipped": history.grad_norm_clipped[s, :n], "grad_whh_spec": history.grad_whh_spec[s, :n]}))
    return pd.concat(frames, ignore_index=True)


def draw_figures(out: Path, history: pd.DataFrame, predictions: pd.DataFrame, tail: pd.DataFrame,
                 metrics: dict) -> list[str]:
    """Figures 1 and 2 from the saved tables (so :func:`redraw` needs no retraining)."""
    from rnnjax.plots.stock import plot_forecast, plot_training

    cfg = metrics["config"]
    title = (f"{metrics['data']['source']}: {cfg['cell'].upper()} H={cfg['hidden']}, {cfg['loss']}, target "
             f"{cfg['target']}, {cfg['optimizer']} lr {cfg['lr']:g}, {cfg['epochs']} epochs")
    seeds = [g for _, g in history.groupby("seed", sort=True)]
    plot_training([g["loss"].to_numpy() for g in seeds], [g["grad_norm"].to_numpy() for g in seeds],
                  [g["grad_norm_clipped"].to_numpy() for g in seeds], clip_norm=cfg["clip"] or None,
                  path=out / "fig1_training.png", title=title,
                  loss_label="batch-mean loss (scaled " + ("log-return" if cfg["target"] == "returns" else "price")
                  + " units)")
    seed_cols = [c for c in predictions.columns if c.startswith("rnn_seed")]
    dates = pd.to_datetime(predictions["date"])
    plot_forecast(pd.to_datetime(tail["date"]), tail["close"], dates, predictions["actual"],
                  predictions[seed_cols].to_numpy().T, predictions["persistence"], path=out / "fig2_forecast.png",
                  title=title, rmse=metrics["rmse"], persistence_rmse=metrics["persistence_rmse"],
                  train_max=metrics["data"]["train_close_max"],
                  currency="USD" if metrics["data"]["source"].endswith(".us") else "price units",
                  zoom_days=60 if cfg["target"] == "returns" else None)
    return ["fig1_training.png", "fig2_forecast.png"]


def redraw(out) -> list[str]:
    """Redraw both figures of a finished run from its CSV and JSON files."""
    import json

    out = Path(out)
    metrics = json.loads((out / "metrics.json").read_text())
    return draw_figures(out, *_saved_tables(out), metrics)


def _saved_tables(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(history, predictions, train_tail)`` as a run saved them: the figures are drawn from these (a float32
    column's shortest decimal, read back as float64, is not the float32 value: drawn from the in-memory
    columns, a line could land one pixel apart from its redraw)."""
    return tuple(pd.read_csv(out / name) for name in ("history.csv", "predictions.csv", "train_tail.csv"))


def _stat_fields(prefix: str, summary: dict) -> dict:
    return {prefix: summary["mean"], f"{prefix}_min": summary["min"], f"{prefix}_max": summary["max"],
            f"{prefix}_std": summary["std"], f"{prefix}_per_seed": summary["per_seed"]}


def _bytes_needed(cfg, data) -> float:
    """A generous estimate of a run's working memory: float32 activations of every window, kept for the
    backward pass (pre-activations, states, deltas, copies), and parameters with their Adam moments."""
    gates = 1 if cfg.cell == "rnn" else 4
    windows = 2 * len(data.train_days) + len(data.test_days)  # training batch, then every window forecast
    activations = windows * cfg.lookback * cfg.hidden * gates * 8
    params = 6 * gates * (cfg.hidden * cfg.hidden + 4 * cfg.hidden)
    return 4.0 * cfg.seeds * (activations + params + 6 * cfg.epochs)


def prepare(cfg: argparse.Namespace):
    """Every check before any work: flags, the output folder, the data (loaded, validated and windowed).

    Returns ``(loaded, data, out)``; raises :class:`experiments._cli.UsageError` naming the problem.
    """
    if cfg.method is None:  # the vanilla RNN: its hand BPTT on CPU, jax.grad on accelerators
        cfg.method = resolve_method("auto") if cfg.cell == "rnn" else "autograd"
    if cfg.cell != "rnn" and cfg.method == "bptt":
        raise _cli.UsageError(f"--method bptt is the vanilla RNN's hand BPTT; --cell {cfg.cell} trains with "
                              "--method autograd (the default for gated cells)")
    if cfg.activation is not None and cfg.cell != "rnn":
        raise _cli.UsageError(f"--activation is the vanilla cell's (--cell rnn); --cell {cfg.cell} has its own "
                              f"gate non-linearities: leave --activation out")
    if cfg.date_format is not None and not cfg.csv:
        raise _cli.UsageError(f"--date-format only applies to --csv; the data come from "
                              f"{'--ticker ' + cfg.ticker if cfg.ticker else 'the embedded msft.us'}; leave it out")
    if not cfg.ticker:
        given = [f"--{k.replace('_', '-')}" for k in TICKER_ONLY if getattr(cfg, k) not in (None, False)]
        if given:
            source = f"--csv {cfg.csv}" if cfg.csv else "the embedded msft.us"
            verb = "applies" if len(given) == 1 else "apply"
            raise _cli.UsageError(f"{', '.join(given)} only {verb} to --ticker (Stooq); the data come from "
                                  f"{source}; leave {'it' if len(given) == 1 else 'them'} out")
    _cli.check_seed_range(cfg.seed, cfg.seeds, "--seed-base")
    cache = (cfg.cache_dir or importlib.import_module("rnnjax.data.stooq").default_cache_dir()) if cfg.ticker else None
    out = _cli.check_out(cfg.out or _cli.default_out("stock_forecast"), experiment="stock_forecast",
                         inputs=[cfg.csv, cfg.cache_dir, cache], force=cfg.force)
    stooq = {}
    if cfg.ticker:
        stooq = {k: v for k, v in (("cache_dir", cfg.cache_dir), ("base_url", cfg.stooq_url),
                                   ("timeout", cfg.timeout), ("deadline", cfg.deadline),
                                   ("retries", cfg.retries)) if v is not None}
        if cfg.refresh:
            stooq |= {"max_age": 0, "use_cache_on_error": False}
    with warnings.catch_warnings():  # what validation fixed is printed below, once, from loaded.notes
        warnings.simplefilter("ignore", UserWarning)
        with _cli.user_errors():
            loaded = load_price_data(csv=cfg.csv, ticker=cfg.ticker, apikey=cfg.apikey, drop_invalid=cfg.drop_invalid,
                                     date_format=cfg.date_format, **stooq)
    _check_loaded(loaded)
    with _cli.user_errors(f"{loaded.source.removeprefix('csv:')}: "):
        data = make_forecast_data(loaded.closes.to_numpy(), lookback=cfg.lookback, train_fraction=cfg.train_fraction,
                                  target=cfg.target, many_to_many=LOSS_MODES[cfg.loss] == "mse")
    if len(data.test_days) < MIN_TEST_WINDOWS:
        n = len(loaded.closes)
        raise _cli.UsageError(f"--train-fraction {cfg.train_fraction:g} leaves {len(data.test_days)} test window"
                              f"{'s' if len(data.test_days) != 1 else ''} of {n} rows, and the metrics (RMSE, the "
                              f"Diebold-Mariano test) need at least {MIN_TEST_WINDOWS}; use a --train-fraction of "
                              f"at most {math.floor((n - MIN_TEST_WINDOWS) / n * 1e4) / 1e4:.4f}")
    _cli.check_memory(_bytes_needed(cfg, data), f"--hidden {cfg.hidden} with --seeds {cfg.seeds} on "
                      f"{len(data.train_days):,} windows of {cfg.lookback}",
                      "use a smaller --hidden, fewer --seeds or a shorter --lookback")
    return loaded, data, out


def _check_loaded(loaded) -> None:
    """Refuse data the run could not finish with: dates the figures cannot show, closes whose squared errors
    underflow or overflow float64 (each a :class:`experiments._cli.UsageError` naming the value)."""
    source = loaded.source.removeprefix("csv:")
    dates, closes = loaded.closes.index, loaded.closes.to_numpy()
    if len(dates) and not (YEAR_RANGE[0] <= dates[0].year and dates[-1].year <= YEAR_RANGE[1]):
        raise _cli.UsageError(f"{source}: the dates run from {dates[0].date()} to {dates[-1].date()}, outside the "
                              f"years {YEAR_RANGE[0]}-{YEAR_RANGE[1]} the figures can show; check the date column "
                              f"(or --date-format)")
    low, high = PRICE_RANGE
    if len(closes) and not (low <= closes.min() and closes.max() <= high):
        raise _cli.UsageError(f"{source}: closes from {closes.min():.3g} to {closes.max():.3g} lie outside "
                              f"{low:g}..{high:g}, where their squared errors (the metrics) stay normal float64 "
                              f"numbers; rescale the prices (e.g. to another currency unit)")


def run(cfg: argparse.Namespace) -> dict:
    """Check everything, then train, evaluate and save into a temporary folder that replaces ``--out``
    only when complete (tables, figures, then metrics.json); returns the metrics."""
    t_start = time.perf_counter()
    loaded, data, out = prepare(cfg)
    with _cli.atomic_folder(out, "stock_forecast", force=cfg.force) as tmp:
        metrics = _run(cfg, loaded, data, tmp, out, t_start)
    _print_summary(metrics, out)
    return metrics


def _run(cfg, loaded, data, tmp: Path, out: Path, t_start: float) -> dict:
    timings = {"imports": _IMPORT_S}
    closes = loaded.closes
    prices, dates = closes.to_numpy(), closes.index
    timings["load"] = time.perf_counter() - t_start
    for note in loaded.notes:
        print(f"[stock_forecast] note: {note}", flush=True)
    seeds = f"{cfg.seeds} seed{'s' if cfg.seeds != 1 else ''}"
    print(f"[stock_forecast] {loaded.source}: {len(prices)} rows {dates[0].date()}..{dates[-1].date()}, "
          f"{len(data.train_days)} train / {len(data.test_days)} test windows; training {seeds} "
          f"x {cfg.epochs} epochs ({cfg.cell}, {cfg.loss}, target {cfg.target}, {cfg.optimizer})", flush=True)

    # matplotlib takes ~0.7 s to import: do it on the idle core while XLA compiles and trains (GIL released)
    plots_import = threading.Thread(target=importlib.import_module, args=("rnnjax.plots.stock",), daemon=True)
    plots_import.start()
    fit, fit_times = fit_model(cfg, data)
    history = fit["history"]
    timings |= fit_times
    print(f"[stock_forecast] compiled in {fit_times['compile']:.2f} s, trained in {fit_times['train']:.2f} s",
          flush=True)

    t0 = time.perf_counter()
    status = _seed_status(history, fit["first_nonfinite"])
    days = np.concatenate([data.train_days, data.test_days])
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged seed's forecasts may overflow: flagged below
        pred_all = values_to_prices(data, prices, days, fit["forecast_scaled"])  # (S, M_train + M_test) prices
    pred_train, pred_test = pred_all[:, : len(data.train_days)], pred_all[:, len(data.train_days):]
    actual_test, actual_train = prices[data.test_days], prices[data.train_days]
    persist_test = forecast.persistence_forecast(prices, data.test_days)
    persist_train = forecast.persistence_forecast(prices, data.train_days)
    ok = np.array([st["status"] == "ok" for st in status]) & np.isfinite(pred_test).all(1) & np.isfinite(
        pred_train).all(1)
    for st, good in zip(status, ok, strict=True):
        if st["status"] == "ok" and not good:
            st["status"], st["message"] = "nonfinite_prediction", "training finite but forecasts are not"
    def per_seed(metric, pred, *args):  # a metric of each finite seed, NaN for the others (reported as None)
        values = np.full(len(pred), np.nan)
        if ok.any():
            values[ok] = metric(pred[ok], *args)
        return values

    test_rmse_s, test_mae_s = per_seed(forecast.rmse, pred_test, actual_test), per_seed(forecast.mae, pred_test,
                                                                                        actual_test)
    test_rmse, test_mae = forecast.seed_summary(test_rmse_s, ok), forecast.seed_summary(test_mae_s, ok)
    p_rmse, p_mae = float(forecast.rmse(persist_test, actual_test)), float(forecast.mae(persist_test, actual_test))
    tested = np.where(ok[:, None], pred_test, actual_test)  # a failed seed: a stand-in, its record is None
    dm = stats.diebold_mariano(tested, persist_test, actual_test)  # Newey-West: shown with its simulated size
    fb = stats.diebold_mariano_fixed_b(tested, persist_test, actual_test, b=FIXED_B)  # the verdict's test
    table = size_table()
    dm_seeds = _dm_by_seed(ok, dm, fb, test_rmse_s / p_rmse, table)
    for st, rec in zip(status, dm_seeds, strict=True):
        st.update(rec)
    timings["predict"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    hist_df = _history_frame(history, status)
    pred_df = pd.DataFrame({"date": dates[data.test_days].strftime("%Y-%m-%d"), "actual": actual_test,
                            "persistence": persist_test})
    if ok.any():
        pred_df["rnn_mean"] = pred_test[ok].mean(0)
    for s in np.flatnonzero(ok):  # seeds that went non-finite are in metrics.json's status, not here
        pred_df[f"rnn_seed{s}"] = pred_test[s]
    tail_days = np.arange(max(0, data.n_train_rows - TAIL_DAYS), data.n_train_rows)
    tail_df = pd.DataFrame({"date": dates[tail_days].strftime("%Y-%m-%d"), "close": prices[tail_days]})
    write_csv(tmp / "history.csv", hist_df)
    write_csv(tmp / "predictions.csv", pred_df)
    write_csv(tmp / "train_tail.csv", tail_df)
    timings["write"] = time.perf_counter() - t0

    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()
              if k not in ("apikey", "out", "debug", "force")}
    config |= {"apikey_given": bool(cfg.apikey), "loss_fn": LOSS_MODES[cfg.loss], "out": str(out)}
    train_part, test_part = prices[: data.n_train_rows], prices[data.n_train_rows:]
    metrics = {
        "experiment": "stock_forecast",
        **_stat_fields("rmse", test_rmse), **_stat_fields("mae", test_mae),
        "persistence_rmse": p_rmse, "persistence_mae": p_mae,
        "beats_persistence": None if test_rmse["mean"] is None else bool(test_rmse["mean"] < p_rmse),
        "seeds_beating_persistence": int(np.sum(test_rmse_s[ok] < p_rmse)),
        "dm_vs_persistence": _dm_summary(dm_seeds, table),  # per seed: seeds.status[s]["dm"], ["dm_fixed_b"]
        "nw_size_table": table,  # both tests' simulated size (rnnjax.data/dm_size.json), rendered in the docs
        "verdict_vs_persistence": _verdict([r["verdict"] for r in dm_seeds]),
        **_stat_fields("train_rmse", forecast.seed_summary(per_seed(forecast.rmse, pred_train, actual_train), ok)),
        **_stat_fields("train_mae", forecast.seed_summary(per_seed(forecast.mae, pred_train, actual_train), ok)),
        "train_persistence_rmse": float(forecast.rmse(persist_train, actual_train)),
        "train_persistence_mae": float(forecast.mae(persist_train, actual_train)),
        "final_loss_per_seed": [float(history.loss[st["seed"], (st["first_nonfinite_step"] or cfg.epochs) - 1])
                                if st["first_nonfinite_step"] != 0 else None for st in status],
        "seeds": {"count": cfg.seeds, "ok": int(ok.sum()), "status": status},
        "config": config,
        "data": {
            "source": loaded.source, "notes": list(loaded.notes),
            "first_date": str(dates[0].date()), "last_date": str(dates[-1].date()),
            "n_rows": len(prices), "n_train_rows": data.n_train_rows, "n_test_rows": len(test_part),
            "n_train_windows": len(data.train_days), "n_test_windows": len(data.test_days),
            "train_range": [str(dates[0].date()), str(dates[data.n_train_rows - 1].date())],
            "test_range": [str(dates[data.n_train_rows].date()), str(dates[-1].date())],
            "train_close_min": float(train_part.min()), "train_close_max": float(train_part.max()),
            "test_close_min": float(test_part.min()), "test_close_max": float(test_part.max()),
            "scaler": {"lo": data.scaler.lo, "hi": data.scaler.hi, "of": cfg.target},
            "test_close_max_scaled": float(np.ptp([train_part.min(), test_part.max()]) / np.ptp(train_part)),
        },
        "clipping": _clipping_stats(history, status, cfg.clip or None),
        "implied_returns": _implied_returns(pred_test, ok, prices[data.test_days - 1], actual_test),
        "files": ["history.csv", "predictions.csv", "train_tail.csv"],
    }
    what = "close" if cfg.target == "price" else "close rebuilt from the log-return"
    metrics["verdicts"] = [verdict_record(metrics, f"next_{cfg.target}_vs_persistence",
                                          f"the RNN's next-day {what} differs in squared-error accuracy from "
                                          "persistence's (tomorrow = today)")]
    t0 = time.perf_counter()
    plots_import.join()
    metrics["figures"] = draw_figures(tmp, *_saved_tables(tmp), metrics)  # as redraw() draws them
    timings["figures"] = time.perf_counter() - t0
    timings["total"] = timings["imports"] + time.perf_counter() - t_start
    metrics["timings_s"] = timings
    write_json(tmp / "metrics.json", metrics)
    return metrics


LEVEL = 0.05  # significance level of the Diebold-Mariano test
FIXED_B = 1.0  # bandwidth fraction b: M = b n, Kiefer, Vogelsang & Bunzel (2000)
DM_TEST = ("Diebold-Mariano on squared errors (d = e_rnn^2 - e_persistence^2) with fixed-b inference: Bartlett "
           "long-run variance with bandwidth = n (Kiefer, Vogelsang & Bunzel 2000), two-sided 5% critical value "
           "of Kiefer & Vogelsang (2005), p-value from the simulated fixed-b limit; a verdict word only where every "
           "finite seed rejects in the same direction")
NW_TEST = ("Diebold-Mariano with the Newey-West (Bartlett) long-run variance, the Newey-West (1994) automatic lag and "
           "a t(M - 1) p-value (the Harvey-Leybourne-Newbold factor sqrt((M - 1)/M) is ~1 at h = 1); shown beside the "
           "verdict with its simulated size, never a verdict")
SIZE_TABLE = "dm_size.json"  # rnnjax.data: benchmarks/size_simulation.py --package-data


def size_table() -> dict:
    """The simulated size of both DM tests (AR(1) loss differentials, ``rnnjax.data/dm_size.json``):
    ``{n, reps, seed, b, command, date, rows: [{phi, nw_rate, nw_ci, fixed_b_rate, fixed_b_ci, nw_median_lag}]}``."""
    import json
    from importlib import resources

    d = json.loads(resources.files("rnnjax.data").joinpath(SIZE_TABLE).read_text())
    keys = ("phi", "reps", "nw_rejections", "nw_rate", "nw_ci", "fixed_b_rejections", "fixed_b_rate", "fixed_b_ci",
            "nw_median_lag")
    return {k: d[k] for k in ("n", "reps", "seed", "b", "command", "date")} | {
        "rows": [{k: r[k] for k in keys} for r in d["rows"]]}


def nw_size_at(table: dict, r1: float) -> dict:
    """The Newey-West test's simulated size at the tabulated phi nearest the lag-1 autocorrelation ``r1``:
    ``{phi, rate, ci}`` (the rate at which it rejects a true null at 5%)."""
    row = min(table["rows"], key=lambda r: abs(r["phi"] - r1))
    return {"phi": row["phi"], "rate": row["nw_rate"], "ci": list(row["nw_ci"])}


def _seed_verdict(t: float | None, reject: bool) -> str:
    """One seed against persistence by the fixed-b test: 'better' / 'worse' where it rejects at 5% (sign of t,
    t < 0: the RNN more accurate), else 'not significant'."""
    if t is None or not reject:
        return "not significant"
    return "better" if t < 0 else "worse"


def _dm_by_seed(ok, dm: stats.DMTest, fb: stats.DMFixedB, ratio, table: dict) -> list[dict]:
    """Per seed (None fields for a failed seed): the Newey-West ``dm`` record (with its simulated size at the
    seed's r_1), the ``dm_fixed_b`` record, the RMSE ratio and the seed's fixed-b verdict."""
    records = []
    for s, good in enumerate(ok):
        if not good:
            records.append({"dm": None, "dm_fixed_b": None, "rmse_ratio": None, "verdict": None})
            continue
        finite = lambda x: float(x) if np.isfinite(x) else None  # identical to persistence: no test (NaN)
        r1 = finite(dm.lag1_autocorr[s])
        nw = {"statistic": finite(dm.statistic[s]), "p_value": finite(dm.p_value[s]), "lags": int(dm.lags[s]),
              "lag1_autocorr": r1, "size_at_r1": None if r1 is None else nw_size_at(table, r1)}
        t = finite(fb.statistic[s])
        fixed = {"statistic": t, "p_value": finite(fb.p_value[s]), "reject_5pct": bool(fb.reject_5pct[s]),
                 "critical_value": fb.critical_value, "b": fb.b}
        records.append({"dm": nw, "dm_fixed_b": fixed, "rmse_ratio": float(ratio[s]),
                        "verdict": _seed_verdict(t, fixed["reject_5pct"])})
    return records


def _clipping_stats(history, status, clip) -> dict:
    """Per seed: the global gradient norm at the first and the last finite epoch, and how many epochs were clipped;
    summarised as [min, max] over the seeds that trained at least one finite epoch."""
    first, last, clipped = [], [], []
    for st in status:
        n = history.grad_norm.shape[1] if st["first_nonfinite_step"] is None else st["first_nonfinite_step"]
        if n:
            g = history.grad_norm[st["seed"], :n]
            first.append(float(g[0]))
            last.append(float(g[-1]))
            clipped.append(int(np.sum(g > clip)) if clip else 0)
    return {"tau": clip, "grad_norm_first": list(_span(first)), "grad_norm_last": list(_span(last)),
            "epochs_clipped": list(_span(clipped))}


def _implied_returns(pred, ok, previous, actual) -> dict:
    """What the forecasts say about the next day's move: r_hat = log(p_hat_i / p_{i-1}) against r = log(p_i / p_{i-1}).

    Per finite seed: the standard deviation and mean of r_hat, its correlation with r, and the share of days
    with the sign of r right; [min, max] over seeds, beside r's own standard deviation and mean.
    """
    r = np.log(actual / previous)
    stats = {"std": [], "mean": [], "corr": [], "sign_agreement": []}
    for s in np.flatnonzero(ok):
        with np.errstate(invalid="ignore", divide="ignore"):
            rh = np.log(pred[s] / previous)
        if not np.all(np.isfinite(rh)):
            continue
        stats["std"].append(float(np.std(rh)))
        stats["mean"].append(float(np.mean(rh)))
        stats["corr"].append(float(np.corrcoef(rh, r)[0, 1]) if np.std(rh) > 0 else None)
        stats["sign_agreement"].append(float(np.mean(np.sign(rh) == np.sign(r))))
    return {"actual_std": float(np.std(r)), "actual_mean": float(np.mean(r)),
            **{k: list(_span(v)) for k, v in stats.items()}}


def _span(values) -> tuple:
    """(min, max) of the values that are not None, or (None, None)."""
    v = [x for x in values if x is not None]
    return (min(v), max(v)) if v else (None, None)


def _dm_summary(records: list[dict], table: dict) -> dict:
    """Counts and seed ranges (min, max) of both tests, the Newey-West test's simulated size at the largest r_1,
    and the RMSE ratio (an effect size, never a verdict)."""
    good = [r for r in records if r["dm"] is not None]
    out = {"test": DM_TEST, "nw_test": NW_TEST, "level": LEVEL, "b": FIXED_B,
           "critical_value": float(stats.fixed_b_critical_value(FIXED_B)), "seeds_tested": len(good),
           "seeds_significantly_better": sum(r["verdict"] == "better" for r in good),
           "seeds_significantly_worse": sum(r["verdict"] == "worse" for r in good)}
    for key in ("statistic", "p_value"):
        out[f"fixed_b_{key}_min"], out[f"fixed_b_{key}_max"] = _span(r["dm_fixed_b"][key] for r in good)
    for key in ("statistic", "p_value", "lags", "lag1_autocorr"):
        out[f"{key}_min"], out[f"{key}_max"] = _span(r["dm"][key] for r in good)
    out["nw_size"] = None if out["lag1_autocorr_max"] is None else nw_size_at(table, out["lag1_autocorr_max"])
    out["rmse_ratio_min"], out["rmse_ratio_max"] = _span(r["rmse_ratio"] for r in good)
    return out


def _verdict(seed_verdicts) -> str:
    """All seeds together (:func:`rnnjax.stats.verdict`): 'beats' / 'worse' only where every finite seed's fixed-b
    test rejects at 5% in that direction, else 'not distinguishable with n seeds'; 'no finite seed' when none
    finished."""
    v = [x for x in seed_verdicts if x is not None]
    if not v:
        return "no finite seed"
    same = len(set(v)) == 1 and v[0] in ("better", "worse")
    word = "beats" if v[0] == "better" else "worse"
    return stats.verdict(same, word, n=len(v), unit="seeds" if len(v) != 1 else "seed")


def _range_text(lo, hi, fmt: str) -> str:
    return "n/a" if lo is None else _range(lo, hi, fmt)


def verdict_record(m: dict, id_: str, claim: str) -> dict:
    """The run's one :class:`experiments.schemas.Verdict` against persistence, from its metrics ``m``.

    ``p`` is the largest fixed-b p-value over the finite seeds (the intersection-union test: every seed must
    reject); the evidence gives the RMSE ratio (an effect size), the fixed-b t and p, and the Newey-West p with
    the rate at which that test rejects a true null at the observed r_1 (simulated, ``rnnjax.data/dm_size.json``).
    """
    dm = m["dm_vs_persistence"]
    if not dm["seeds_tested"]:
        evidence, p = "no seed finished with finite forecasts", None
    else:
        size = dm["nw_size"]
        nw = (f"Newey-West p = {_range_text(dm['p_value_min'], dm['p_value_max'], '{:.2g}')}, a test that rejects a "
              f"true null {size['rate']:.0%} of the time at r1 = {size['phi']:g}" if size else "Newey-West: no test")
        evidence = (f"{_range_text(dm['rmse_ratio_min'], dm['rmse_ratio_max'], '{:.3g}')}x persistence's RMSE; "
                    f"fixed-b t = {_range_text(dm['fixed_b_statistic_min'], dm['fixed_b_statistic_max'], '{:.2f}')} "
                    f"(5% critical value {dm['critical_value']:.2f}), p = "
                    f"{_range_text(dm['fixed_b_p_value_min'], dm['fixed_b_p_value_max'], '{:.2g}')}; "
                    f"{dm['seeds_significantly_worse']} of {dm['seeds_tested']} seeds significantly worse, "
                    f"{dm['seeds_significantly_better']} better; {nw}")
        p = dm["fixed_b_p_value_max"]
    return {"id": id_, "claim": claim, "test": DM_TEST, "evidence": evidence, "p": p,
            "verdict": m["verdict_vs_persistence"]}


def _fmt(x) -> str:
    return "   n/a" if x is None else f"{x:8.3f}"


def _range(lo, hi, fmt: str) -> str:
    """``"lo-hi"`` formatted, or one value when both ends read the same."""
    a, b = fmt.format(lo), fmt.format(hi)
    return a if a == b else f"{a}-{b}"


def _print_summary(m: dict, out: Path) -> None:
    n_ok = m["seeds"]["ok"]
    label = f"RNN ({n_ok} seed{'s' if n_ok != 1 else ''}{', mean' if n_ok > 1 else ''})"
    spread = (f"   RMSE {m['rmse_min']:.3f}..{m['rmse_max']:.3f}" if n_ok > 1 else "")
    print(f"\n{'test days ' + m['data']['test_range'][0] + '..' + m['data']['test_range'][1]:34s}"
          f"{'RMSE':>8s} {'MAE':>8s}")
    print(f"{label:34s}{_fmt(m['rmse'])} {_fmt(m['mae'])}{spread}")
    print(f"{'persistence (close of day before)':34s}{_fmt(m['persistence_rmse'])} {_fmt(m['persistence_mae'])}")
    for st in m["seeds"]["status"]:
        if st["status"] != "ok":
            print(f"seed {st['seed']}: {st['status']}: {st['message']}")
    # a point comparison, not a test: no verdict word here (the verdict is the fixed-b test's, below)
    verdict = {True: "is below", False: "is not below", None: "cannot be compared with"}[m["beats_persistence"]]
    dm = m["dm_vs_persistence"]
    t = m["timings_s"]
    count = m["seeds"]["count"]
    v = m["verdicts"][0]
    print(f"The RNN's mean RMSE {verdict} persistence's ({m['seeds_beating_persistence']}/{count} seed"
          f"{'s' if count != 1 else ''} lower). Diebold-Mariano, fixed-b (b = {dm['b']:g}) at 5%: "
          f"{v['evidence']}. Verdict: {m['verdict_vs_persistence']}. "
          f"Timings: imports {t['imports']:.2f} s, compile {t['compile']:.2f} s, train {t['train']:.2f} s, "
          f"figures {t['figures']:.2f} s, total {t['total']:.2f} s. Results in {out}/", flush=True)


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` (default: sys.argv), run, and return the metrics saved to metrics.json."""
    parser = build_parser()
    cfg = parser.parse_args(argv)
    if cfg.quick:
        _cli.apply_quick(parser, argv, cfg, {"epochs": QUICK_EPOCHS})
    start(host_devices=False)  # before JAX starts its backend: compile settings and cache
    return run(cfg)


if __name__ == "__main__":
    _cli.run_as_command(main, "stock_forecast")
