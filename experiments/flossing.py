"""Gradient flossing (Engelken, NeurIPS 2023) on a task the vanilla tanh RNN fails: the delayed recall of one bit.

    python -m experiments.flossing [--out DIR] [--quick] [--seeds 16] [--delays 5 10 20 40 70] [--arm-rhos 1.5] ...

Two parts, each writing CSV/JSON beside its figures:

1. Which gradient flosses (``fig13_flossing_gradients.png``): edge-of-chaos tanh networks (rho 2.5,
   weak input) flossed with plain Adam under each gradient of :func:`rnnjax.lyapunov_of` -- exact,
   frozen states, local -- seeds vmapped; sum lambda_i^2 before and after, re-measured on the
   flossing sequence; per gradient the reductions' median with a bootstrap interval and their range,
   and a Wilcoxon signed-rank test of local against exact. The measurement behind :func:`rnnjax.floss`'s
   default.
2. The delayed recall (``fig10``-``fig12``): a bit +-1 at step T - 1 - d, Gaussian distractor noise
   on a second channel, recall at the last step (:func:`rnnjax.data.tasks.delayed_recall`; one
   bit, so the task measures how far back the gradient reaches, not memory capacity). A vanilla
   tanh RNN (Gaussian W_hh, rho 1, and the arm rhos, e.g. 1.5) per seed, all seeds, rhos and delays
   vmapped, trained three ways: (a) plainly, (b) after flossing, (c) after flossing and with the
   flossing loss as a regulariser every k steps. Seed s of base B (key 1000 B + s) has its own
   initialisation and its own data stream (training batches, held-out set, flossing inputs), shared
   by its three conditions. Success (held-out accuracy >= threshold) per delay with Clopper-Pearson
   intervals, the conditions compared by Fisher's exact test, the bridgeable delay (the largest
   delay whose success rate's lower 95% bound exceeds 1/2), the time to solve (the first held-out
   check reaching the threshold) as Kaplan-Meier curves with log-rank tests (``fig14``), the
   Lyapunov spectrum at initialisation, after flossing and after training, the condition number of
   the long-term Jacobian, and the top exponents recorded during training by ``fit``'s monitor.
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()

import argparse  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pandas as pd  # noqa: E402

import rnnjax  # noqa: E402
from experiments import _cli  # noqa: E402
from experiments._progress import Progress, StageLog  # noqa: E402
from experiments.job import start  # noqa: E402
from rnnjax import stats  # noqa: E402
from rnnjax.analysis import GRADIENTS  # noqa: E402
from rnnjax.data import tasks  # noqa: E402
from rnnjax.io import write_csv, write_json  # noqa: E402
from rnnjax.train import run_steps  # noqa: E402

CONDITIONS = ("plain", "floss_before", "floss_before_and_during")
LETTERS = dict(zip(CONDITIONS, "abc", strict=True))
PAIRS = (("floss_before", "plain"), ("floss_before_and_during", "plain"), ("floss_before_and_during", "floss_before"))
PIECE = 10  # training steps per call of the compiled program (about a second on 2 cores): progress, Ctrl-C
FIGURES = ("fig10_flossing_delay.png", "fig11_flossing_spectra.png", "fig12_flossing_monitor.png",
           "fig13_flossing_gradients.png", "fig14_flossing_survival.png")
FILES = ("gradient_choice.csv", "gradient_choice.json", "runs.csv", "spectra.csv", "monitor.csv", "floss_curves.csv",
         "survival.csv", "survival_curves.csv")
PROBE = 2**20  # the fixed probe's key: fold_in(PRNGKey(1000 B), PROBE), no seed's own key


def build_parser() -> argparse.ArgumentParser:
    p = _cli.Parser("flossing", __doc__)
    p.add_argument("--out", type=Path, help="output folder, replaced as a whole when the run completes "
                   "(default: runs/flossing-<date>-<time>/)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (same code, tiny sizes: "
                   + ", ".join(f"{k}={v}" for k, v in QUICK.items()) + "; defaults: a flag given explicitly wins)")
    _cli.add_force(p)
    _cli.add_seed_base(p, max=_cli.SEED_MAX // 1000 - 1)  # network s of base B: seed 1000 B + s
    count = lambda hi: _cli.number(int, min=1, max=hi)
    rho = _cli.number(float, min=0, min_open=True, max=1e3)
    g = p.add_argument_group("1. which gradient flosses")
    g.add_argument("--choice-seeds", type=_cli.number(int, min=2, max=100), default=16,
                   help="edge-of-chaos networks (default: 16)")
    g.add_argument("--choice-steps", type=count(10**6), default=1000, help="Adam steps per gradient (default: 1000)")
    g.add_argument("--choice-lr", type=_cli.learning_rate, default=3e-3, help="Adam learning rate (default: 3e-3)")
    t = p.add_argument_group("2. delayed recall")
    t.add_argument("--seeds", type=count(999), default=16, help="networks per delay, condition and rho, each with its "
                   "own data stream (default: 16)")
    t.add_argument("--delays", type=count(10**5), nargs="+", action=_cli.Distinct, default=[5, 10, 20, 40, 70],
                   help="delays d between the bit and its recall (default: 5 10 20 40 70)")
    t.add_argument("--length", type=_cli.number(int, min=3, max=10**5), default=80,
                   help="sequence length T, > every delay + 1 (default: 80)")
    t.add_argument("--hidden", type=count(4096), default=32, help="hidden units H (default: 32)")
    t.add_argument("--noise", type=_cli.number(float, min=0, max=1e3), default=1.0,
                   help="std of the distractor input (default: 1)")
    t.add_argument("--rho", type=rho, default=1.0, help="W_hh = rho x N(0, 1/H) at initialisation (default: 1)")
    t.add_argument("--arm-rhos", type=rho, nargs="*", action=_cli.Distinct, default=[1.5],
                   help="further rhos, each run as a whole arm on the same seeds (default: 1.5; none: no arm)")
    t.add_argument("--steps", type=count(10**6), default=400, help="training steps, a fresh batch each (default: 400)")
    t.add_argument("--batch", type=count(10**5), default=32, help="sequences per step (default: 32)")
    t.add_argument("--lr", type=_cli.learning_rate, default=3e-3, help="Adam learning rate, clipping at 1 "
                                                                       "(default: 3e-3)")
    t.add_argument("--num", type=count(4096), default=16, help="exponents flossed, at most --hidden (default: 16)")
    t.add_argument("--floss-steps", type=count(10**6), default=200,
                   help="flossing steps before training (default: 200)")
    t.add_argument("--floss-lr", type=_cli.learning_rate, default=1e-3, help="flossing Adam learning rate "
                                                                             "(default: 1e-3)")
    t.add_argument("--floss-every", type=count(10**6), default=10,
                   help="(c): flossing loss every k training steps (default: 10)")
    t.add_argument("--floss-weight", type=_cli.number(float, min=0, max=1e6), default=1.0,
                   help="(c): its weight (default: 1)")
    t.add_argument("--threshold", type=_cli.number(float, min=0, min_open=True, max=1), default=0.9,
                   help="success: held-out accuracy >= this, in (0, 1] (default: 0.9)")
    t.add_argument("--test-size", type=count(10**6), default=512, help="held-out sequences per delay and seed "
                   "(default: 512)")
    t.add_argument("--monitor-every", type=count(10**6), default=20,
                   help="monitor the top 4 exponents, and check the held-out accuracy (the time to solve), every m "
                        "training steps (default: 20)")
    return p


QUICK = dict(choice_seeds=3, choice_steps=30, seeds=3, delays=[3, 12], length=16, hidden=8, steps=30, batch=8, num=4,
             floss_steps=10, floss_every=5, test_size=64, monitor_every=10)  # --quick: defaults, an explicit flag wins


def validate(cfg) -> None:
    """The checks between flags (each flag's own range is its argparse type): a :class:`_cli.UsageError`."""
    if cfg.num > cfg.hidden:
        raise _cli.UsageError(f"--num ({cfg.num}) must be at most --hidden ({cfg.hidden}): only H exponents exist")
    bad = [d for d in cfg.delays if not d <= cfg.length - 2]
    if bad:
        raise _cli.UsageError(f"--delays must lie in 1..length-2 = {cfg.length - 2} (the state needs a step before "
                              f"the bit), got {bad}; use shorter delays or a larger --length")
    if len(set(cfg.delays)) != len(cfg.delays):
        raise _cli.UsageError(f"--delays must be distinct, got {cfg.delays}")
    if cfg.rho in cfg.arm_rhos:
        raise _cli.UsageError(f"--arm-rhos must differ from --rho ({cfg.rho:g}): it is the main arm already")
    cfg.delays = sorted(cfg.delays)
    cfg.arm_rhos = list(cfg.arm_rhos)
    rhos = 1 + len(cfg.arm_rhos)
    runs = 3 * len(cfg.delays) * cfg.seeds * rhos
    data = len(cfg.delays) * cfg.seeds * rhos * cfg.test_size * cfg.length * 3  # held-out inputs and targets
    work = runs * (cfg.batch * cfg.length * (cfg.hidden * 6 + 3) + 24 * cfg.hidden**2
                   + cfg.length * cfg.hidden * cfg.num)
    _cli.check_memory(4.0 * (data + 2 * work), f"the delayed recall ({len(cfg.delays)} delays x {cfg.seeds} seeds x "
                      f"{rhos} rhos x {cfg.steps:,} steps x {cfg.batch} sequences of {cfg.length}, --hidden "
                      f"{cfg.hidden})", "use fewer --steps, --seeds or --arm-rhos, a smaller --batch, --hidden or "
                      "--length")


_stage = StageLog("flossing", _T_START)


def _timed(fn, *args):
    """``fn(*args)`` compiled ahead of time: (result, compile seconds, run seconds)."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, t1 - t0, time.perf_counter() - t1


def _num(x) -> float | None:
    """A measured number for the JSON: None where it is not finite."""
    x = float(x)
    return x if np.isfinite(x) else None


# ------------------------------------------------------------------------------- 1. which gradient

def run_gradient_choice(cfg, out: Path) -> dict:
    """Edge-of-chaos tanh networks (H 12, T 50, rho 2.5, W_xh x 0.1) flossed with each gradient; sum lambda^2."""
    H, T, num = 12, 50, 4
    cell = rnnjax.cells.vanilla("tanh", rho=2.5)
    keys = jax.vmap(lambda s: jax.random.split(jax.random.PRNGKey(s), 2))(jnp.arange(cfg.choice_seeds)
                                                                          + 1000 * cfg.seed)
    make_step = lambda p: partial(cell.step, p)
    params = jax.vmap(lambda k: cell.init(k, 1, H))(keys[:, 0])
    params = params._replace(W_xh=0.1 * params.W_xh)  # weak input
    xs = jax.vmap(lambda k: jax.random.normal(k, (T, 1)))(keys[:, 1])
    h0 = jnp.zeros(H)
    lyap = jax.vmap(lambda p, x: rnnjax.lyapunov_of(make_step(p), h0, x, num=num))
    before = np.asarray(jnp.sum(lyap(params, xs) ** 2, -1))
    rows, modes, logs = [], {}, {}
    for mode in GRADIENTS:
        run = lambda p, x, mode=mode: jax.vmap(lambda q, y: rnnjax.floss(
            make_step, q, h0, y, num=num, num_steps=cfg.choice_steps, optimizer=optax.adam(cfg.choice_lr),
            gradient=mode))(p, x)
        (flossed, hist), compile_s, run_s = _timed(run, params, xs)
        after = np.asarray(jnp.sum(lyap(flossed, xs) ** 2, -1))  # re-measured on the final parameters
        ratio = before / np.maximum(after, 1e-30)
        logs[mode] = np.log(ratio)
        med, lo, hi = stats.bootstrap_median_ci(ratio, seed=cfg.seed)  # percentile bootstrap (Efron 1979)
        modes[mode] = {"sum_sq_after": after.tolist(), "reduction": ratio.tolist(),
                       "min_reduction": float(ratio.min()), "max_reduction": float(ratio.max()),
                       "median_reduction": med, "median_ci": [lo, hi],
                       "seeds_at_least_5x": int((ratio >= 5).sum()), "seeds_worse": int((ratio < 1).sum()),
                       "all_finite": bool(np.asarray(hist.finite).all()), "run_s": run_s, "compile_s": compile_s}
        loss = np.asarray(hist.loss)
        for s in range(cfg.choice_seeds):
            rows.append(pd.DataFrame({"gradient": mode, "seed": s, "step": np.arange(cfg.choice_steps),
                                      "loss": loss[s]}))
        _stage(f"  gradient {mode}: reduction median {med:.3g} [{lo:.3g}, {hi:.3g}], range {ratio.min():.3g}-"
               f"{ratio.max():.3g} ({run_s:.1f}s)")
    best = max(GRADIENTS, key=lambda m: (modes[m]["median_reduction"], modes[m]["min_reduction"]))
    comparison = None
    if {"local", "exact"} <= set(GRADIENTS):
        comparison = _paired_comparison(logs["local"], logs["exact"])
    summary = {"hidden": H, "T": T, "num": num, "rho": 2.5, "input_scale": 0.1, "optimizer": "adam",
               "lr": cfg.choice_lr, "steps": cfg.choice_steps, "seeds": cfg.choice_seeds,
               "sum_sq_before": before.tolist(), "gradients": modes, "best": best,
               "floss_default": rnnjax.flossing.FLOSS_GRADIENT, "local_vs_exact": comparison}
    write_csv(out / "gradient_choice.csv", pd.concat(rows, ignore_index=True))
    write_json(out / "gradient_choice.json", summary)
    return summary


def _paired_comparison(log_a, log_b) -> dict:
    """Per seed, a's reduction over b's (log ratios ``log_a - log_b``): Wilcoxon's signed-rank test, two-sided
    (``scipy.stats.wilcoxon``, exact for small n), and the median ratio with its bootstrap interval."""
    import scipy.stats

    diff = np.asarray(log_a) - np.asarray(log_b)
    med, lo, hi = stats.bootstrap_median_ci(np.exp(diff))
    if np.all(diff == 0):
        p = 1.0
    else:
        p = float(scipy.stats.wilcoxon(diff, alternative="two-sided").pvalue)  # Wilcoxon (1945) signed-rank
    return {"ratio_median": med, "ratio_ci": [lo, hi], "seeds_a_better": int((diff > 0).sum()),
            "seeds": len(diff), "p": p, "reject_5pct": p < 0.05}


# ------------------------------------------------------------------------------- 2. delayed recall

def _rhos(cfg) -> list[float]:
    """The arms: the main rho first, then ``--arm-rhos``."""
    return [cfg.rho, *cfg.arm_rhos]


def _draw(cfg, key, n, d):
    return tasks.delayed_recall(key, n, cfg.length, d, noise=cfg.noise)


def _setup(cfg):
    """The cell, every seed's data keys and held-out sets, the flossing inputs, the probe and every run's initial
    parameters (one jitted program). Runs are rho-major: run j = r S + s is seed s at the r-th rho."""
    cell = rnnjax.cells.vanilla("tanh", rho=cfg.rho)  # rho only sets the initialisation: one step for every arm
    H, R = cfg.hidden, len(_rhos(cfg))
    delays = jnp.asarray(cfg.delays)

    def arrays():
        # seed s of base B: key 1000 B + s, split into its initialisation, training, held-out and flossing streams
        keys = jax.vmap(lambda s: jax.random.split(jax.random.PRNGKey(s), 4))(jnp.arange(cfg.seeds)
                                                                              + 1000 * cfg.seed)
        k_init, k_train, k_test, k_floss = (keys[:, i] for i in range(4))
        per = lambda f: jax.vmap(lambda d: jax.vmap(lambda k: f(jax.random.fold_in(k, d), d))(k_train))(delays)
        train_keys = per(lambda k, d: k)  # (K, S): step t of (delay d, seed s) draws its batch from fold_in(., t)
        test = jax.vmap(lambda d: jax.vmap(lambda k: _draw(cfg, jax.random.fold_in(k, d), cfg.test_size, d))(k_test)
                        )(delays)  # (K, S, N, T, 2), (K, S, N, 1)
        # flossing inputs: the task's inputs without the bit, a fresh sequence per flossing step, per seed
        floss_x = jax.vmap(lambda k: _draw(cfg, k, cfg.floss_steps, 1)[0].at[..., 0].set(0.0))(k_floss)
        probe_key = jax.random.fold_in(jax.random.PRNGKey(1000 * cfg.seed), PROBE)
        probe = _draw(cfg, probe_key, 1, 1)[0][0].at[:, 0].set(0.0)  # (T, 2): spectra and the monitor, fixed
        params0 = [jax.vmap(lambda k, r=r: rnnjax.init_model(rnnjax.cells.vanilla("tanh", rho=r), k, 2, H, 1))(k_init)
                   for r in _rhos(cfg)]
        tile = lambda a, axis: jnp.concatenate([a] * R, axis=axis)  # the same seeds in every arm
        return (tile(train_keys, 1), jax.tree.map(lambda a: tile(a, 1), test), tile(floss_x, 0), probe,
                jax.tree.map(lambda *a: jnp.concatenate(a), *params0))

    return (cell, *jax.jit(arrays)())


def _programs(cfg, cell, probe):
    H = cfg.hidden
    h0 = jnp.zeros(H)
    make_step = lambda m: partial(cell.step, m.cell)
    warmup = min(10, cfg.length // 4)
    loss_fn = rnnjax.make_loss(cell, "mse_last")
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(cfg.lr))
    monitor = rnnjax.spectrum_monitor(make_step, h0, probe, num=min(4, H), warmup=warmup)
    reg = rnnjax.flossing_regularizer(make_step, h0, lambda batch: batch[0][0], num=cfg.num, weight=cfg.floss_weight,
                                      warmup=warmup)
    delays = jnp.asarray(cfg.delays)

    def spectrum(model):  # all H exponents on the fixed probe; log10 condition number of the T-step Jacobian
        lam = rnnjax.lyapunov_of(make_step(model), h0, probe, num=H, warmup=warmup)
        # sigma_1 / sigma_num of d h_T / d h_0 over the task's T steps ~ exp(T (lambda_1 - lambda_num)) (Engelken 2023)
        log10_cond = cfg.length * (lam[0] - lam[cfg.num - 1]) / np.log(10.0)
        return lam, log10_cond

    def floss_all(params0, floss_x):
        return jax.vmap(lambda p, x: rnnjax.floss(make_step, p, h0, x, num=cfg.num, num_steps=cfg.floss_steps,
                                                  optimizer=optax.adam(cfg.floss_lr), warmup=warmup))(params0, floss_x)

    value_and_grad = lambda p, batch, carry: (*jax.value_and_grad(loss_fn)(p, batch), carry)

    def start_grid(params):
        """Every (delay, run)'s state before its first step: (params, Adam state, alive), delays x runs."""
        grid = jax.tree.map(lambda a: jnp.broadcast_to(a, (len(cfg.delays), *a.shape)), params)
        runs = jax.tree.leaves(params)[0].shape[0]
        return grid, jax.vmap(jax.vmap(opt.init))(grid), jnp.ones((len(cfg.delays), runs), bool)

    def train_piece(params, opt_state, alive, keys, start, *, regularize, steps):
        """``steps`` updates of every run from step ``start`` (:func:`rnnjax.train.run_steps` continued; the
        monitor and the regulariser keep their schedule); step t of (delay d, seed s) trains on a fresh batch
        drawn from ``fold_in(key[d, s], t)``, the seed's own stream."""
        def one(p, o, a, key, d):
            batches = lambda t: _draw(cfg, jax.random.fold_in(key, t), cfg.batch, d)
            return run_steps(value_and_grad, p, batches, opt, num_steps=steps, start=start, opt_state=o, alive=a,
                             return_state=True, monitor=monitor, monitor_every=cfg.monitor_every,
                             regularizer=reg if regularize else None, regularize_every=cfg.floss_every)

        per_delay = jax.vmap(one, in_axes=(0, 0, 0, 0, None))  # runs
        return jax.vmap(per_delay)(params, opt_state, alive, keys, delays)  # delays x runs

    def predictions(p, test_set):
        return jax.vmap(lambda x: rnnjax.predict(cell, p, x)[-1])(test_set[0])  # y_T per held-out sequence

    def accuracy(params, test):  # the success criterion's accuracy, delays x runs
        return jax.vmap(jax.vmap(lambda p, t: tasks.recall_accuracy(predictions(p, t), t[1])))(params, test)

    def evaluate(params, test):
        def one(p, test_set):
            pred = predictions(p, test_set)
            acc = tasks.recall_accuracy(pred, test_set[1])
            mse = jnp.mean((pred - test_set[1]) ** 2)  # held-out MSE of y_T against the bit
            lam, cond = spectrum(p)
            return {"acc": acc, "mse": mse, "spectrum": lam, "log10_cond": cond}

        return jax.vmap(jax.vmap(one))(params, test)  # delays x runs

    return floss_all, (start_grid, train_piece, accuracy, evaluate), jax.vmap(spectrum)


def piece_steps(cfg) -> int:
    """Training steps per call: about :data:`PIECE`, a multiple of the monitor's interval that divides the
    budget (so the pieces equal one run: the monitor's records fall on the same steps); else the budget."""
    m = cfg.monitor_every
    for steps in range(max(m, PIECE - PIECE % m), cfg.steps + 1, m):
        if cfg.steps % steps == 0:
            return steps
    return cfg.steps


def train_grid(cfg, programs, compiled: dict, params, keys, test, *, regularize: bool, label: str):
    """Train every (delay, run) from ``params`` (per run) for ``cfg.steps`` steps in pieces of
    :func:`piece_steps`, one compiled program called again and again (Python regains control between
    pieces: progress, Ctrl-C), checking the held-out accuracy after each piece (the time to solve), then
    evaluate. ``compiled`` keeps this run's programs (training by ``regularize``: (a) and (b) share one;
    ``"accuracy"``, ``"evaluate"``). Returns ``(results, compile s, run s)``."""
    start_grid, train_piece, accuracy, evaluate = programs
    steps = piece_steps(cfg)
    state = jax.jit(start_grid)(params)
    t0 = time.perf_counter()
    if regularize not in compiled:
        piece = jax.jit(partial(train_piece, regularize=regularize, steps=steps))
        compiled[regularize] = piece.lower(*state, keys, jnp.int32(0)).compile()
    for name, fn in (("accuracy", accuracy), ("evaluate", evaluate)):
        if name not in compiled:
            compiled[name] = jax.jit(fn).lower(state[0], test).compile()
    program = compiled[regularize]
    t1 = time.perf_counter()
    progress = Progress(f"[flossing] {label}", total=cfg.steps)
    history, checks = [], []
    for first in range(0, cfg.steps, steps):
        p, o, a, h = program(*state, keys, jnp.int32(first))
        state = (p, o, a)
        history.append(jax.tree.map(np.asarray, (h.loss, h.finite, h.monitor)))  # what the run keeps of a piece
        checks.append(np.asarray(compiled["accuracy"](p, test)) * np.asarray(a))  # a halted run scores 0
        progress.update(first + steps)
    progress.close()
    # delays x runs x steps
    loss, finite, monitor = jax.tree.map(lambda *parts: np.concatenate(parts, axis=2), *history)
    results = {"loss": loss, "finite": finite, "monitor": monitor, "checks": np.stack(checks, -1),
               "check_steps": np.arange(1, len(checks) + 1) * steps,
               **jax.tree.map(np.asarray, compiled["evaluate"](state[0], test))}
    return results, t1 - t0, time.perf_counter() - t1


def run_delayed_recall(cfg, out: Path) -> dict:
    cell, keys, test, floss_x, probe, params0 = _setup(cfg)
    floss_all, programs, spectra = _programs(cfg, cell, probe)
    timings = {}
    spectra = jax.jit(spectra)
    (lam0, cond0) = jax.block_until_ready(spectra(params0))
    runs = len(_rhos(cfg)) * cfg.seeds
    _stage(f"  flossing {runs} networks ({cfg.seeds} seeds x rho {', '.join(f'{r:g}' for r in _rhos(cfg))}), "
           f"{cfg.floss_steps} steps, num {cfg.num}")
    (flossed, fhist), timings["floss_compile"], timings["floss_run"] = _timed(floss_all, params0, floss_x)
    lam_f, cond_f = jax.block_until_ready(spectra(flossed))
    results = {}
    grid = partial(train_grid, cfg, programs, {}, keys=keys, test=test)
    _stage(f"  training (a) plain: {len(cfg.delays)} delays x {runs} runs x {cfg.steps} steps, "
           f"{piece_steps(cfg)} per call")
    results["plain"], timings["plain_compile"], timings["plain_run"] = grid(params0, regularize=False,
                                                                            label="(a) plain training")
    _stage(f"  training (b) after flossing ({timings['plain_run']:.1f}s for (a))")
    # the same compiled program as (a), from the flossed init
    results["floss_before"], _, timings["floss_before_run"] = grid(flossed, regularize=False,
                                                                   label="(b) training after flossing")
    _stage(f"  training (c) flossing before and every {cfg.floss_every} steps during "
           f"({timings['floss_before_run']:.1f}s for (b))")
    results["floss_before_and_during"], timings["during_compile"], timings["floss_before_and_during_run"] = grid(
        flossed, regularize=True, label="(c) training with flossing during")
    return _summarise(cfg, results, (lam0, cond0), (lam_f, cond_f), fhist, timings, out)


# ------------------------------------------------------------------------------- statistics

def bridgeable(solved: list[int], n: int, delays: list[int]) -> dict:
    """The bridgeable delay, fixed before the runs: the largest delay whose success rate's Clopper-Pearson lower
    95% bound exceeds 1/2 (None if none), with the intervals at it and at the next delay tried (its uncertainty)."""
    lo, hi = stats.clopper_pearson(np.asarray(solved), n)  # Clopper & Pearson (1934)
    ok = [i for i in range(len(delays)) if lo[i] > 0.5]
    i = max(ok) if ok else None
    nxt = 0 if i is None else i + 1
    ci = lambda j: [float(lo[j]), float(hi[j])]
    return {"delay": None if i is None else delays[i], "solved": None if i is None else solved[i],
            "ci": None if i is None else ci(i),
            "next_delay": delays[nxt] if nxt < len(delays) else None,
            "next_solved": solved[nxt] if nxt < len(delays) else None,
            "next_ci": ci(nxt) if nxt < len(delays) else None}


def time_to_solve(checks: np.ndarray, check_steps: np.ndarray, threshold: float, budget: int):
    """(times, events) per run from its held-out accuracy at the checks (..., C): the first check reaching the
    threshold (event) or the budget (censored: never reached within it)."""
    hit = checks >= threshold
    event = hit.any(-1)
    first = np.argmax(hit, -1)
    return np.where(event, np.asarray(check_steps)[first], budget).astype(float), event


def rmst(km, budget: float) -> float:
    """The restricted mean time to solve: the area under the Kaplan-Meier curve S(t) on [0, budget]."""
    t = np.concatenate([[0.0], km.times[km.times < budget], [budget]])
    s = np.concatenate([[1.0], km.survival[km.times < budget]])
    return float(np.sum(s * np.diff(t)))  # integral of the step function S


def _verdict_row(vid, claim, test, evidence, result, word_if_greater, word_if_less, greater, n):
    """One :class:`experiments.schemas.Verdict`: a verdict word only where ``result`` rejects at 5%."""
    if result is None:
        return {"id": vid, "claim": claim, "test": test, "evidence": evidence, "p": None,
                "verdict": "no test: no run solved it in either condition"}
    word = stats.verdict(result, word_if_greater if greater else word_if_less, n=n)
    return {"id": vid, "claim": claim, "test": test, "evidence": evidence, "p": _num(result.p_value), "verdict": word}


def _compare(cfg, conds, prefix: str, rho: float) -> tuple[dict, list[dict]]:
    """Per delay and pair: Fisher's exact test on the success counts and the log-rank test on the times to solve."""
    n, delays, tests, verdicts = cfg.seeds, list(cfg.delays), {}, []
    for x, y in PAIRS:
        key = f"{LETTERS[x]}_vs_{LETTERS[y]}"
        rows = []
        for i, d in enumerate(delays):
            px, py = conds[x]["per_delay"][i], conds[y]["per_delay"][i]
            kx, ky = px["solved_seeds"], py["solved_seeds"]
            f = stats.fisher_exact(kx, n, ky, n)  # two-sided (Fisher 1922)
            tx, ex = np.asarray(px["times"]), np.asarray(px["events"])
            ty, ey = np.asarray(py["times"]), np.asarray(py["events"])
            lr = stats.logrank(tx, ex, ty, ey) if (ex.any() or ey.any()) else None  # Mantel (1966)
            rx, ry = px["rmst"], py["rmst"]
            rows.append({"delay": d, "solved": [kx, ky], "fisher_p": f.p_value, "odds_ratio": _num(f.statistic),
                         "fisher_reject": f.reject_5pct, "logrank_p": None if lr is None else _num(lr.p_value),
                         "logrank_z": None if lr is None else _num(lr.statistic),
                         "logrank_reject": bool(lr is not None and lr.reject_5pct)})
            at = f"at d = {d}" + (f", rho {rho:g}" if prefix else "")
            verdicts.append(_verdict_row(
                f"{prefix}d={d}:{key}", f"({LETTERS[x]}) solves more seeds than ({LETTERS[y]}) {at}",
                "Fisher exact, two-sided", f"{kx}/{n} vs {ky}/{n}", f, "beats", "worse", kx > ky, n))
            if not prefix:  # the time to solve: the main arm
                med = lambda p: f"{p['median_steps']:g}" if p["median_steps"] is not None else f">{cfg.steps}"
                verdicts.append(_verdict_row(
                    f"d={d}:{key}:time", f"({LETTERS[x]}) solves sooner than ({LETTERS[y]}) {at}",
                    "log-rank, two-sided", f"median steps {med(px)} vs {med(py)} (solved by a check "
                    f"{int(ex.sum())}/{n} vs {int(ey.sum())}/{n})", lr, "sooner", "later", rx < ry, n))
        tests[key] = rows
    return tests, verdicts


def _summarise(cfg, results, init_spec, floss_spec, fhist, timings, out: Path) -> dict:
    delays, S, H = list(cfg.delays), cfg.seeds, cfg.hidden
    rhos = _rhos(cfg)
    rows, spec_rows, mon_rows, surv_rows, curve_rows = [], [], [], [], []
    arms, verdicts = [], []
    for r, rho in enumerate(rhos):
        sl = slice(r * S, (r + 1) * S)
        conds = {}
        for name in CONDITIONS:
            res = {k: np.asarray(v) for k, v in results[name].items()}
            res = {k: (v if k == "check_steps" else v[:, sl]) for k, v in res.items()}
            finite = res["finite"].all(-1)  # (K, S): every step finite
            acc, mse = res["acc"], res["mse"]
            if not np.isfinite(mse[finite]).all():
                raise FloatingPointError(f"{name}: a finite run has a non-finite test MSE")
            success = (acc >= cfg.threshold) & finite
            times, events = time_to_solve(res["checks"], res["check_steps"], cfg.threshold, cfg.steps)
            per_delay = []
            for i, d in enumerate(delays):
                k = int(success[i].sum())
                lo, hi = stats.clopper_pearson(k, S)  # Clopper & Pearson (1934)
                km = stats.kaplan_meier(times[i], events[i])  # Kaplan & Meier (1958), censored at the budget
                fin = finite[i]
                per_delay.append({
                    "delay": d, "success_rate": k / S, "solved_seeds": k, "ci_low": float(lo), "ci_high": float(hi),
                    "finite_seeds": int(fin.sum()), "test_acc_mean": float(acc[i].mean()),
                    "test_mse_mean": float(np.mean(mse[i][fin])) if fin.any() else None,
                    "test_mse_min": float(np.min(mse[i][fin])) if fin.any() else None,
                    "test_mse_max": float(np.max(mse[i][fin])) if fin.any() else None,
                    "lambda1_mean": _num(res["spectrum"][i, :, 0].mean()),
                    "log10_cond_mean": _num(res["log10_cond"][i].mean()),
                    "times": times[i].tolist(), "events": events[i].tolist(), "solved_by_a_check": int(events[i].sum()),
                    "median_steps": _num(km.median), "median_steps_ci": [_num(km.median_ci[0]), _num(km.median_ci[1])],
                    "rmst": rmst(km, cfg.steps),
                })
                for t, s_, lo_, hi_ in zip(km.times, km.survival, km.ci_low, km.ci_high, strict=True):
                    curve_rows.append({"rho": rho, "condition": name, "delay": d, "step": float(t),
                                       "survival": float(s_), "ci_low": float(lo_), "ci_high": float(hi_)})
                for s in range(S):
                    row = {"rho": rho, "condition": name, "delay": d, "seed": s, "finite": bool(finite[i, s]),
                           "test_acc": float(acc[i, s]), "test_mse": float(mse[i, s]) if finite[i, s] else None,
                           "solved": bool(success[i, s]), "lambda1": float(res["spectrum"][i, s, 0]),
                           "log10_cond": float(res["log10_cond"][i, s])}
                    rows.append(row)
                    surv_rows.append({"rho": rho, "condition": name, "delay": d, "seed": s,
                                      "steps_to_solve": float(times[i, s]), "solved": bool(events[i, s])})
                    if r == 0:
                        spec_rows.append(pd.DataFrame({"stage": "trained", "condition": name, "delay": d, "seed": s,
                                                       "index": np.arange(1, H + 1),
                                                       "lambda": res["spectrum"][i, s]}))
                        steps = np.arange(res["monitor"].shape[2]) * cfg.monitor_every
                        for j in range(res["monitor"].shape[3]):
                            mon_rows.append(pd.DataFrame({"condition": name, "delay": d, "seed": s, "step": steps,
                                                          "index": j + 1, "lambda": res["monitor"][i, s, :, j]}))
            lam1 = res["monitor"][-1, :, :, 0]  # (S, records): the monitor's lambda_1 at the longest delay
            b = bridgeable([p["solved_seeds"] for p in per_delay], S, delays)
            conds[name] = {"per_delay": per_delay, "bridgeable": b, "bridgeable_delay": b["delay"],
                           "run_s": timings[f"{name}_run"], "monitor_lambda1_first_mean": _num(lam1[:, 0].mean()),
                           "monitor_lambda1_last_mean": _num(lam1[:, -1].mean())}
        prefix = "" if r == 0 else f"rho={rho:g}:"
        tests, v = _compare(cfg, conds, prefix, rho)
        verdicts += v
        lam_i, lam_f = (np.asarray(spec[0])[sl, 0] for spec in (init_spec, floss_spec))
        arms.append({"rho": rho, "conditions": conds, "tests": tests, "init_lambda1_mean": _num(lam_i.mean()),
                     "flossed_lambda1_mean": _num(lam_f.mean()),
                     "solved_total": {k: sum(p["solved_seeds"] for p in c["per_delay"]) for k, c in conds.items()}})
    for stage, (lam, _cond) in (("init", init_spec), ("flossed", floss_spec)):
        lam = np.asarray(lam)[:S]
        for s in range(S):
            spec_rows.append(pd.DataFrame({"stage": stage, "condition": "", "delay": 0, "seed": s,
                                           "index": np.arange(1, H + 1), "lambda": lam[s]}))
    lam0, cond0 = (np.asarray(a)[:S] for a in init_spec)
    lamf, condf = (np.asarray(a)[:S] for a in floss_spec)
    floss_loss = np.asarray(fhist.loss)[:S]
    spectra = {
        "init": {"lambda1_mean": _num(lam0[:, 0].mean()), "lambda_num_mean": _num(lam0[:, cfg.num - 1].mean()),
                 "log10_cond_mean": _num(cond0.mean()), "mean_spectrum": lam0.mean(0).tolist()},
        "flossed": {"lambda1_mean": _num(lamf[:, 0].mean()), "lambda_num_mean": _num(lamf[:, cfg.num - 1].mean()),
                    "log10_cond_mean": _num(condf.mean()), "mean_spectrum": lamf.mean(0).tolist(),
                    "floss_loss_first_mean": _num(floss_loss[:, 0].mean()),
                    "floss_loss_last_mean": _num(floss_loss[:, -1].mean())},
    }
    conds = arms[0]["conditions"]
    floss_s = timings["floss_run"]
    cost = {  # every arm together: the runs share one program
        "plain_s": conds["plain"]["run_s"],
        "floss_before_s": floss_s + conds["floss_before"]["run_s"],
        "floss_before_and_during_s": floss_s + conds["floss_before_and_during"]["run_s"],
    }
    cost["floss_before_ratio"] = cost["floss_before_s"] / cost["plain_s"]
    cost["floss_before_and_during_ratio"] = cost["floss_before_and_during_s"] / cost["plain_s"]
    write_csv(out / "runs.csv", pd.DataFrame(rows).fillna({"test_mse": -1.0}))
    write_csv(out / "spectra.csv", pd.concat(spec_rows, ignore_index=True))
    write_csv(out / "monitor.csv", pd.concat(mon_rows, ignore_index=True))
    write_csv(out / "survival.csv", pd.DataFrame(surv_rows))
    write_csv(out / "survival_curves.csv", pd.DataFrame(curve_rows))
    write_csv(out / "floss_curves.csv", pd.DataFrame({
        "seed": np.repeat(np.arange(S), cfg.floss_steps), "step": np.tile(np.arange(cfg.floss_steps), S),
        "loss": floss_loss.reshape(-1)}))
    return {"conditions": conds, "tests": arms[0]["tests"], "arms": arms[1:], "spectra": spectra, "cost": cost,
            "verdict": summary_verdict(arms[0]["tests"], delays, S), "verdicts": verdicts, "timings_s": timings,
            "delays": delays, "check_every": piece_steps(cfg)}


def summary_verdict(tests: dict, delays: list[int], n: int) -> dict:
    """The experiment's headline, from Fisher's tests against plain training: the delays where (b) or (c) solve
    significantly more (or fewer) seeds than (a), at 5%; no rejection anywhere: not distinguishable."""
    parts, kinds = [], set()
    label = {"b_vs_a": "flossing before training", "c_vs_a": "flossing before and during training"}
    found = {}
    for key in ("b_vs_a", "c_vs_a"):
        rows = tests[key]
        better = [r["delay"] for r in rows if r["fisher_reject"] and r["solved"][0] > r["solved"][1]]
        worse = [r["delay"] for r in rows if r["fisher_reject"] and r["solved"][0] < r["solved"][1]]
        found[key] = {"beats_at": better, "worse_at": worse}
        where = lambda ds: "d = " + ", ".join(map(str, ds))
        if better:
            kinds.add("beats")
            parts.append(f"{label[key]} beats plain training at {where(better)}")
        if worse:
            kinds.add("worse")
            parts.append(f"{label[key]} is worse than plain training at {where(worse)}")
    if not parts:
        text, kind = f"no condition is distinguishable from plain training at any delay with {n} seeds", "null"
    else:
        text = "; ".join(parts) + " (Fisher's exact test, 5%)"
        kind = "beats" if kinds == {"beats"} else "worse" if kinds == {"worse"} else "mixed"
    return {"kind": kind, "text": text, "largest_delay_tried": max(delays), **found}


# ------------------------------------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    cfg = parser.parse_args(argv)
    start(host_devices=False)  # before JAX starts its backend: compile settings and cache
    if cfg.quick:
        _cli.apply_quick(parser, argv, cfg, QUICK)
    validate(cfg)
    final = _cli.check_out(cfg.out or _cli.default_out("flossing"), experiment="flossing", force=cfg.force)
    with _cli.atomic_folder(final, "flossing", force=cfg.force) as out:
        metrics = _run(cfg, out)
    _stage(f"done: {final}/ (metrics.json and {len(metrics['figures'])} figures)")
    return metrics


def _run(cfg, out: Path) -> dict:
    from rnnjax.plots import flossing as plots

    timings = {}
    t = time.perf_counter()
    _stage("1/2 which gradient flosses (exact, frozen states, local)")
    choice = run_gradient_choice(cfg, out)
    timings["gradient_choice"] = time.perf_counter() - t
    t = time.perf_counter()
    _stage("2/2 delayed recall: plain, flossing before, flossing before and during")
    recall = run_delayed_recall(cfg, out)
    timings["delayed_recall"] = time.perf_counter() - t
    _stage(recall["verdict"]["text"])
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()
              if k not in ("out", "debug", "force")}
    recall_cfg = {"task": "delayed recall of one bit (tasks.delayed_recall), recall at the last step",
                  "loss": "mse_last against the bit +-1", "cell": "vanilla tanh, Gaussian W_hh x rho",
                  "optimizer": "adam + clip_by_global_norm(1)", "flossing_optimizer": "adam",
                  "flossing_gradient": rnnjax.flossing.FLOSS_GRADIENT,
                  "flossing_inputs": "distractor noise without the bit, a fresh sequence per flossing step, per seed",
                  "regularizer_inputs": "the first sequence of each training batch",
                  "data": "seed s of base B: PRNGKey(1000 B + s) split into its initialisation, training, held-out "
                          "and flossing keys; step t at delay d draws its batch from fold_in(fold_in(train, d), t); "
                          "the three conditions of a seed share them, and every rho arm uses the same seeds",
                  "success": "held-out accuracy >= threshold after the last step, every step finite",
                  "time_to_solve": "the first held-out check (every check_every steps) with accuracy >= threshold; "
                                   "censored at the budget when none reaches it",
                  "bridgeable_delay": "the largest delay whose Clopper-Pearson lower 95% bound on the success rate "
                                      "exceeds 1/2",
                  "log10_cond": "T (lambda_1 - lambda_num) / ln 10: sigma_1 / sigma_num of the T-step Jacobian",
                  "runs_csv": "one row per rho, condition, delay and seed; test_mse is -1 where the run went "
                              "non-finite (finite = False; such runs count as unsolved and stay out of the MSE "
                              "means)"}
    if choice["local_vs_exact"] is not None:
        c = choice["local_vs_exact"]
        word = stats.verdict(bool(c["reject_5pct"]), "beats" if c["ratio_median"] > 1 else "worse",
                                    n=c["seeds"], unit="networks")
        recall["verdicts"].insert(0, {
            "id": "choice:local_vs_exact", "claim": "the local gradient reduces sum lambda_i^2 more than the exact one",
            "test": "Wilcoxon signed-rank on log reductions, two-sided",
            "evidence": f"local better on {c['seeds_a_better']}/{c['seeds']} networks, median ratio "
                        f"{c['ratio_median']:.3g}", "p": _num(c["p"]), "verdict": word})
    t = time.perf_counter()
    runs = pd.read_csv(out / "runs.csv")
    plots.plot_delay(runs[runs["rho"] == cfg.rho], recall, cfg.threshold, path=out / FIGURES[0])
    plots.plot_spectra(pd.read_csv(out / "spectra.csv"), recall, path=out / FIGURES[1])
    plots.plot_monitor(pd.read_csv(out / "monitor.csv"), recall, path=out / FIGURES[2])
    plots.plot_gradient_choice(pd.read_csv(out / "gradient_choice.csv"), choice, path=out / FIGURES[3])
    plots.plot_survival_grid(pd.read_csv(out / "survival.csv"), recall, rho=cfg.rho, budget=cfg.steps,
                             path=out / FIGURES[4])
    timings["figures"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - _T_START
    timings["cpu_total"] = time.process_time()  # CPU seconds of this process, all threads (on a shared machine
    #                                            the wall time above also counts other programs' load)
    metrics = {"quick": cfg.quick, "seed": cfg.seed, "config": config, "recall_setup": recall_cfg,
               "gradient_choice": choice, **recall, "timings_s": {**recall["timings_s"], **timings},
               "figures": list(FIGURES), "files": list(FILES)}
    write_json(out / "metrics.json", metrics)  # last: its presence means the run completed
    _stage(f"finished in {timings['total']:.1f}s")
    return metrics


if __name__ == "__main__":
    _cli.run_as_command(main, "flossing")
