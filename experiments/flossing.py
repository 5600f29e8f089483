"""Gradient flossing (Engelken, NeurIPS 2023) on a task the vanilla tanh RNN fails: the delayed recall of one bit.

    python -m experiments.flossing [--out DIR] [--quick] [--seeds 8] [--delays 5 10 20 40 70] ...

Two parts, each writing CSV/JSON beside its figures:

1. Which gradient flosses (``fig13_flossing_gradients.png``): edge-of-chaos tanh networks (rho 2.5,
   weak input) flossed with plain Adam under each gradient of :func:`rnnjax.lyapunov_of` -- exact,
   frozen states, local -- seeds vmapped; sum lambda_i^2 before and after, re-measured on the
   flossing sequence. This is the measurement behind :func:`rnnjax.floss`'s default.
2. The delayed recall (``fig10``-``fig12``): a bit +-1 at step T - 1 - d, Gaussian distractor noise
   on a second channel, recall at the last step (:func:`rnnjax.data.tasks.delayed_recall`; one
   bit, so the task measures how far back the gradient reaches, not memory capacity). A vanilla
   tanh RNN (Gaussian W_hh, rho 1) per seed, all seeds and delays vmapped, trained three ways on the
   same batches: (a) plainly, (b) after flossing, (c) after flossing and with the flossing loss
   as a regulariser every k steps. Success (held-out accuracy >= threshold) and test MSE per delay,
   the Lyapunov spectrum at initialisation, after flossing and after training, the condition
   number of the long-term Jacobian, and the top exponents recorded during training by
   ``fit``'s monitor.
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
from rnnjax.analysis import GRADIENTS  # noqa: E402
from rnnjax.data import tasks  # noqa: E402
from rnnjax.io import write_csv, write_json  # noqa: E402
from rnnjax.train import run_steps  # noqa: E402

CONDITIONS = ("plain", "floss_before", "floss_before_and_during")
PIECE = 10  # training steps per call of the compiled program (about a second on 2 cores): progress, Ctrl-C
FIGURES = ("fig10_flossing_delay.png", "fig11_flossing_spectra.png", "fig12_flossing_monitor.png",
           "fig13_flossing_gradients.png")


def build_parser() -> argparse.ArgumentParser:
    p = _cli.Parser("flossing", __doc__)
    p.add_argument("--out", type=Path, help="output folder, replaced as a whole when the run completes "
                   "(default: runs/flossing-<date>-<time>/)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (same code, tiny sizes: "
                   + ", ".join(f"{k}={v}" for k, v in QUICK.items()) + "; defaults: a flag given explicitly wins)")
    _cli.add_force(p)
    _cli.add_seed_base(p, max=_cli.SEED_MAX // 1000 - 1)  # network s of base B: seed 1000 B + s
    count = lambda hi: _cli.number(int, min=1, max=hi)
    g = p.add_argument_group("1. which gradient flosses")
    g.add_argument("--choice-seeds", type=count(100), default=8, help="edge-of-chaos networks (default: 8)")
    g.add_argument("--choice-steps", type=count(10**6), default=1000, help="Adam steps per gradient (default: 1000)")
    g.add_argument("--choice-lr", type=_cli.learning_rate, default=3e-3, help="Adam learning rate (default: 3e-3)")
    t = p.add_argument_group("2. delayed recall")
    t.add_argument("--seeds", type=count(999), default=8, help="networks per delay and condition (default: 8)")
    t.add_argument("--delays", type=count(10**5), nargs="+", action=_cli.Distinct, default=[5, 10, 20, 40, 70],
                   help="delays d between the bit and its recall (default: 5 10 20 40 70)")
    t.add_argument("--length", type=_cli.number(int, min=3, max=10**5), default=80,
                   help="sequence length T, > every delay + 1 (default: 80)")
    t.add_argument("--hidden", type=count(4096), default=32, help="hidden units H (default: 32)")
    t.add_argument("--noise", type=_cli.number(float, min=0, max=1e3), default=1.0,
                   help="std of the distractor input (default: 1)")
    t.add_argument("--rho", type=_cli.number(float, min=0, min_open=True, max=1e3), default=1.0,
                   help="W_hh = rho x N(0, 1/H) at initialisation (default: 1)")
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
    t.add_argument("--test-size", type=count(10**6), default=512, help="held-out sequences per delay (default: 512)")
    t.add_argument("--monitor-every", type=count(10**6), default=20,
                   help="monitor the top 4 exponents every m training steps (default: 20)")
    return p


QUICK = dict(choice_seeds=2, choice_steps=30, seeds=2, delays=[3, 12], length=16, hidden=8, steps=30, batch=8, num=4,
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
    cfg.delays = sorted(cfg.delays)
    runs = 3 * len(cfg.delays) * cfg.seeds
    data = len(cfg.delays) * (cfg.steps * cfg.batch + cfg.test_size) * cfg.length * 3  # inputs and targets
    work = runs * (cfg.batch * cfg.length * cfg.hidden * 6 + 24 * cfg.hidden**2 + cfg.length * cfg.hidden * cfg.num)
    _cli.check_memory(4.0 * (data + 2 * work), f"the delayed recall ({len(cfg.delays)} delays x {cfg.seeds} seeds x "
                      f"{cfg.steps:,} steps x {cfg.batch} sequences of {cfg.length}, --hidden {cfg.hidden})",
                      "use fewer --steps or --seeds, a smaller --batch, --hidden or --length")


_stage = StageLog("flossing", _T_START)


def _timed(fn, *args):
    """``fn(*args)`` compiled ahead of time: (result, compile seconds, run seconds)."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, t1 - t0, time.perf_counter() - t1


# ------------------------------------------------------------------------------- 1. which gradient

def run_gradient_choice(cfg, out: Path) -> dict:
    """Edge-of-chaos tanh networks (H 12, T 50, rho 2.5, W_xh x 0.1) flossed with each gradient; sum lambda^2."""
    H, T, num = 12, 50, 4
    cell = rnnjax.cells.vanilla("tanh", rho=2.5)
    seeds = jnp.arange(cfg.choice_seeds) + 100 * cfg.seed
    make_step = lambda p: partial(cell.step, p)
    params = jax.vmap(lambda s: cell.init(jax.random.PRNGKey(s), 1, H))(seeds)
    params = params._replace(W_xh=0.1 * params.W_xh)  # weak input
    xs = jax.vmap(lambda s: jax.random.normal(jax.random.PRNGKey(10_000 + s), (T, 1)))(seeds)
    h0 = jnp.zeros(H)
    lyap = jax.vmap(lambda p, x: rnnjax.lyapunov_of(make_step(p), h0, x, num=num))
    before = np.asarray(jnp.sum(lyap(params, xs) ** 2, -1))
    rows, modes = [], {}
    for mode in GRADIENTS:
        run = lambda p, x, mode=mode: jax.vmap(lambda q, y: rnnjax.floss(
            make_step, q, h0, y, num=num, num_steps=cfg.choice_steps, optimizer=optax.adam(cfg.choice_lr),
            gradient=mode))(p, x)
        (flossed, hist), compile_s, run_s = _timed(run, params, xs)
        after = np.asarray(jnp.sum(lyap(flossed, xs) ** 2, -1))  # re-measured on the final parameters
        ratio = before / np.maximum(after, 1e-30)
        modes[mode] = {"sum_sq_after": after.tolist(), "reduction": ratio.tolist(),
                       "min_reduction": float(ratio.min()), "median_reduction": float(np.median(ratio)),
                       "seeds_at_least_5x": int((ratio >= 5).sum()), "seeds_worse": int((ratio < 1).sum()),
                       "all_finite": bool(np.asarray(hist.finite).all()), "run_s": run_s, "compile_s": compile_s}
        loss = np.asarray(hist.loss)
        for s in range(len(seeds)):
            rows.append(pd.DataFrame({"gradient": mode, "seed": s, "step": np.arange(cfg.choice_steps),
                                      "loss": loss[s]}))
        _stage(f"  gradient {mode}: reduction min {ratio.min():.3g}, median {np.median(ratio):.3g} ({run_s:.1f}s)")
    best = max(GRADIENTS, key=lambda m: (modes[m]["seeds_at_least_5x"], modes[m]["min_reduction"]))
    summary = {"hidden": H, "T": T, "num": num, "rho": 2.5, "input_scale": 0.1, "optimizer": "adam",
               "lr": cfg.choice_lr, "steps": cfg.choice_steps, "seeds": len(seeds), "sum_sq_before": before.tolist(),
               "gradients": modes, "best": best, "floss_default": rnnjax.flossing.FLOSS_GRADIENT}
    write_csv(out / "gradient_choice.csv", pd.concat(rows, ignore_index=True))
    write_json(out / "gradient_choice.json", summary)
    return summary


# ------------------------------------------------------------------------------- 2. delayed recall

def _setup(cfg):
    """The cell, the data and every seed's initial parameters (one jitted program)."""
    cell = rnnjax.cells.vanilla("tanh", rho=cfg.rho)
    T, H = cfg.length, cfg.hidden
    delays = jnp.asarray(cfg.delays)

    def arrays():
        k_train, k_test, k_floss, k_probe = jax.random.split(jax.random.PRNGKey(cfg.seed), 4)
        draw = lambda key, n, d: tasks.delayed_recall(key, n, T, d, noise=cfg.noise)
        # the same batches for every seed and condition (a paired comparison); one stream per delay
        keys = jax.random.split(k_train, len(cfg.delays))
        train = jax.vmap(lambda d, key: draw(key, cfg.steps * cfg.batch, d))(delays, keys)
        train = jax.tree.map(lambda a: a.reshape(len(cfg.delays), cfg.steps, cfg.batch, *a.shape[2:]), train)
        test = jax.vmap(lambda d, key: draw(key, cfg.test_size, d))(delays, jax.random.split(k_test, len(delays)))
        # flossing inputs: the task's inputs without the bit, a fresh sequence per flossing step
        floss_x = draw(k_floss, cfg.floss_steps, 1)[0].at[..., 0].set(0.0)  # (floss_steps, T, 2)
        probe = draw(k_probe, 1, 1)[0][0].at[:, 0].set(0.0)  # (T, 2): spectra and the monitor, fixed
        seeds = jnp.arange(cfg.seeds) + 1000 * cfg.seed
        params0 = jax.vmap(lambda s: rnnjax.init_model(cell, jax.random.PRNGKey(s), 2, H, 1))(seeds)
        return train, test, floss_x, probe, params0

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

    def spectrum(model):  # all H exponents on the fixed probe; log10 condition number of the T-step Jacobian
        lam = rnnjax.lyapunov_of(make_step(model), h0, probe, num=H, warmup=warmup)
        # sigma_1 / sigma_num of d h_T / d h_0 over the task's T steps ~ exp(T (lambda_1 - lambda_num)) (Engelken 2023)
        log10_cond = cfg.length * (lam[0] - lam[cfg.num - 1]) / np.log(10.0)
        return lam, log10_cond

    def floss_all(params0, floss_x):
        return jax.vmap(lambda p: rnnjax.floss(make_step, p, h0, floss_x, num=cfg.num, num_steps=cfg.floss_steps,
                                               optimizer=optax.adam(cfg.floss_lr), warmup=warmup))(params0)

    value_and_grad = lambda p, batch, carry: (*jax.value_and_grad(loss_fn)(p, batch), carry)

    def start_grid(params):
        """Every (delay, seed) run's state before its first step: (params, Adam state, alive), delays x seeds."""
        grid = jax.tree.map(lambda a: jnp.broadcast_to(a, (len(cfg.delays), *a.shape)), params)
        return grid, jax.vmap(jax.vmap(opt.init))(grid), jnp.ones((len(cfg.delays), cfg.seeds), bool)

    def train_piece(params, opt_state, alive, train, start, *, regularize, steps):
        """``steps`` updates of every run from step ``start`` (:func:`rnnjax.train.run_steps` continued; the
        monitor and the regulariser keep their schedule, step s using batch s of its delay)."""
        def one(p, o, a, batches):
            return run_steps(value_and_grad, p, batches, opt, num_steps=steps, start=start, opt_state=o, alive=a,
                             return_state=True, monitor=monitor, monitor_every=cfg.monitor_every,
                             regularizer=reg if regularize else None, regularize_every=cfg.floss_every)

        per_delay = jax.vmap(one, in_axes=(0, 0, 0, None))  # seeds
        return jax.vmap(per_delay)(params, opt_state, alive, train)  # delays x seeds

    def evaluate(params, test):
        def one(p, test_set):
            pred = jax.vmap(lambda x: rnnjax.predict(cell, p, x)[-1])(test_set[0])  # y_T per test sequence
            acc = tasks.recall_accuracy(pred, test_set[1])
            mse = jnp.mean((pred - test_set[1]) ** 2)  # held-out MSE of y_T against the bit
            lam, cond = spectrum(p)
            return {"acc": acc, "mse": mse, "spectrum": lam, "log10_cond": cond}

        return jax.vmap(jax.vmap(one, in_axes=(0, None)))(params, test)  # delays x seeds

    return floss_all, (start_grid, train_piece, evaluate), jax.vmap(spectrum)


def piece_steps(cfg) -> int:
    """Training steps per call: about :data:`PIECE`, a multiple of the monitor's interval that divides the
    budget (so the pieces equal one run: the monitor's records fall on the same steps); else the budget."""
    m = cfg.monitor_every
    for steps in range(max(m, PIECE - PIECE % m), cfg.steps + 1, m):
        if cfg.steps % steps == 0:
            return steps
    return cfg.steps


def train_grid(cfg, programs, compiled: dict, params, train, test, *, regularize: bool, label: str):
    """Train every (delay, seed) run from ``params`` (per seed) for ``cfg.steps`` steps in pieces of
    :func:`piece_steps`, one compiled program called again and again (Python regains control between
    pieces: progress, Ctrl-C), then evaluate. ``compiled`` keeps this run's programs (training by
    ``regularize``: (a) and (b) share one; ``"evaluate"``). Returns ``(results, compile s, run s)``."""
    start_grid, train_piece, evaluate = programs
    steps = piece_steps(cfg)
    state = jax.jit(start_grid)(params)
    t0 = time.perf_counter()
    if regularize not in compiled:
        piece = jax.jit(partial(train_piece, regularize=regularize, steps=steps))
        compiled[regularize] = piece.lower(*state, train, jnp.int32(0)).compile()
    if "evaluate" not in compiled:
        compiled["evaluate"] = jax.jit(evaluate).lower(state[0], test).compile()
    program = compiled[regularize]
    t1 = time.perf_counter()
    progress = Progress(f"[flossing] {label}", total=cfg.steps)
    history = []
    for first in range(0, cfg.steps, steps):
        p, o, a, h = program(*state, train, jnp.int32(first))
        state = (p, o, a)
        history.append(jax.tree.map(np.asarray, (h.loss, h.finite, h.monitor)))  # what the run keeps of a piece
        progress.update(first + steps)
    progress.close()
    # delays x seeds x steps
    loss, finite, monitor = jax.tree.map(lambda *parts: np.concatenate(parts, axis=2), *history)
    results = {"loss": loss, "finite": finite, "monitor": monitor,
               **jax.tree.map(np.asarray, compiled["evaluate"](state[0], test))}
    return results, t1 - t0, time.perf_counter() - t1


def run_delayed_recall(cfg, out: Path) -> dict:
    cell, train, test, floss_x, probe, params0 = _setup(cfg)
    floss_all, programs, spectra = _programs(cfg, cell, probe)
    timings = {}
    spectra = jax.jit(spectra)
    (lam0, cond0) = jax.block_until_ready(spectra(params0))
    _stage(f"  flossing {cfg.seeds} networks, {cfg.floss_steps} steps, num {cfg.num}")
    (flossed, fhist), timings["floss_compile"], timings["floss_run"] = _timed(floss_all, params0, floss_x)
    lam_f, cond_f = jax.block_until_ready(spectra(flossed))
    results = {}
    grid = partial(train_grid, cfg, programs, {}, train=train, test=test)
    _stage(f"  training (a) plain: {len(cfg.delays)} delays x {cfg.seeds} seeds x {cfg.steps} steps, "
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


def _bridgeable(rates: list[float], delays: list[int]) -> int | None:
    """The largest delay solved by at least half the seeds (None if none)."""
    ok = [d for d, r in zip(delays, rates, strict=True) if r >= 0.5]
    return max(ok) if ok else None


def _summarise(cfg, results, init_spec, floss_spec, fhist, timings, out: Path) -> dict:
    delays = list(cfg.delays)
    rows, spec_rows, mon_rows, conds = [], [], [], {}
    H = cfg.hidden
    for name in CONDITIONS:
        r = {k: np.asarray(v) for k, v in results[name].items()}
        finite = r["finite"].all(-1)  # (K, S): every step finite
        acc, mse = r["acc"], r["mse"]
        if not np.isfinite(mse[finite]).all():
            raise FloatingPointError(f"{name}: a finite run has a non-finite test MSE")
        success = (acc >= cfg.threshold) & finite
        per_delay = []
        for i, d in enumerate(delays):
            per_delay.append({
                "delay": d, "success_rate": float(success[i].mean()), "solved_seeds": int(success[i].sum()),
                "finite_seeds": int(finite[i].sum()),
                "test_acc_mean": float(acc[i].mean()), "test_mse_mean": float(np.mean(mse[i][finite[i]]))
                if finite[i].any() else None,
                "test_mse_min": float(np.min(mse[i][finite[i]])) if finite[i].any() else None,
                "test_mse_max": float(np.max(mse[i][finite[i]])) if finite[i].any() else None,
                "lambda1_mean": float(r["spectrum"][i, :, 0].mean()),
                "log10_cond_mean": float(r["log10_cond"][i].mean()),
            })
            for s in range(cfg.seeds):
                rows.append({"condition": name, "delay": d, "seed": s, "finite": bool(finite[i, s]),
                             "test_acc": float(acc[i, s]), "test_mse": float(mse[i, s]) if finite[i, s] else None,
                             "solved": bool(success[i, s]), "lambda1": float(r["spectrum"][i, s, 0]),
                             "log10_cond": float(r["log10_cond"][i, s])})
                spec_rows.append(pd.DataFrame({"stage": "trained", "condition": name, "delay": d, "seed": s,
                                               "index": np.arange(1, H + 1), "lambda": r["spectrum"][i, s]}))
                steps = np.arange(r["monitor"].shape[2]) * cfg.monitor_every
                for j in range(r["monitor"].shape[3]):
                    mon_rows.append(pd.DataFrame({"condition": name, "delay": d, "seed": s, "step": steps,
                                                  "index": j + 1, "lambda": r["monitor"][i, s, :, j]}))
        rates = [p["success_rate"] for p in per_delay]
        lam1 = r["monitor"][-1, :, :, 0]  # (S, records): the monitor's lambda_1 at the longest delay
        conds[name] = {"per_delay": per_delay, "bridgeable_delay": _bridgeable(rates, delays),
                       "run_s": timings[f"{name}_run"], "monitor_lambda1_first_mean": float(lam1[:, 0].mean()),
                       "monitor_lambda1_last_mean": float(lam1[:, -1].mean())}
    for stage, (lam, cond) in (("init", init_spec), ("flossed", floss_spec)):
        lam, cond = np.asarray(lam), np.asarray(cond)
        for s in range(cfg.seeds):
            spec_rows.append(pd.DataFrame({"stage": stage, "condition": "", "delay": 0, "seed": s,
                                           "index": np.arange(1, H + 1), "lambda": lam[s]}))
    lam0, cond0 = (np.asarray(a) for a in init_spec)
    lamf, condf = (np.asarray(a) for a in floss_spec)
    floss_loss = np.asarray(fhist.loss)
    spectra = {
        "init": {"lambda1_mean": float(lam0[:, 0].mean()), "lambda_num_mean": float(lam0[:, cfg.num - 1].mean()),
                 "log10_cond_mean": float(cond0.mean()), "mean_spectrum": lam0.mean(0).tolist()},
        "flossed": {"lambda1_mean": float(lamf[:, 0].mean()), "lambda_num_mean": float(lamf[:, cfg.num - 1].mean()),
                    "log10_cond_mean": float(condf.mean()), "mean_spectrum": lamf.mean(0).tolist(),
                    "floss_loss_first_mean": float(floss_loss[:, 0].mean()),
                    "floss_loss_last_mean": float(floss_loss[:, -1].mean())},
    }
    plain_d, best = conds["plain"]["bridgeable_delay"], None
    for name in CONDITIONS[1:]:
        d = conds[name]["bridgeable_delay"]
        conds[name]["extends_by"] = None if d is None or plain_d is None else d - plain_d
        best = d if best is None or (d is not None and d > best) else best
    floss_s = timings["floss_run"]
    cost = {
        "plain_s": conds["plain"]["run_s"],
        "floss_before_s": floss_s + conds["floss_before"]["run_s"],
        "floss_before_and_during_s": floss_s + conds["floss_before_and_during"]["run_s"],
    }
    cost["floss_before_ratio"] = cost["floss_before_s"] / cost["plain_s"]
    cost["floss_before_and_during_ratio"] = cost["floss_before_and_during_s"] / cost["plain_s"]
    verdict = _verdict(plain_d, best, delays)
    write_csv(out / "runs.csv", pd.DataFrame(rows).fillna({"test_mse": -1.0}))
    write_csv(out / "spectra.csv", pd.concat(spec_rows, ignore_index=True))
    write_csv(out / "monitor.csv", pd.concat(mon_rows, ignore_index=True))
    write_csv(out / "floss_curves.csv", pd.DataFrame({
        "seed": np.repeat(np.arange(cfg.seeds), cfg.floss_steps), "step": np.tile(np.arange(cfg.floss_steps),
                                                                                 cfg.seeds),
        "loss": floss_loss.reshape(-1)}))
    return {"conditions": conds, "spectra": spectra, "cost": cost, "verdict": verdict,
            "timings_s": timings, "delays": delays}


def _verdict(plain_d, best, delays) -> dict:
    if best is None and plain_d is None:
        text, kind = "no condition solved any delay: no verdict on flossing", "none"
    elif plain_d is None or (best is not None and best > plain_d):
        text = (f"flossing extends the bridgeable delay from {plain_d if plain_d is not None else 'none'} "
                f"to {best} steps")
        kind = "extends"
    elif best == plain_d:
        text, kind = f"null result: flossing does not extend the bridgeable delay ({plain_d} steps either way)", "null"
    else:
        text, kind = f"flossing shortens the bridgeable delay from {plain_d} to {best} steps", "shortens"
    return {"kind": kind, "text": text, "plain_bridgeable_delay": plain_d, "flossing_bridgeable_delay": best,
            "largest_delay_tried": max(delays)}


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
                  "flossing_inputs": "distractor noise without the bit, a fresh sequence per flossing step",
                  "regularizer_inputs": "the first sequence of each training batch",
                  "data": "the same training batches and test sets for every seed and condition",
                  "log10_cond": "T (lambda_1 - lambda_num) / ln 10: sigma_1 / sigma_num of the T-step Jacobian",
                  "runs_csv": "one row per condition, delay and seed; test_mse is -1 where the run went non-finite "
                              "(finite = False; such runs count as unsolved and stay out of the MSE means)"}
    t = time.perf_counter()
    plots.plot_delay(pd.read_csv(out / "runs.csv"), recall, cfg.threshold, path=out / FIGURES[0])
    plots.plot_spectra(pd.read_csv(out / "spectra.csv"), recall, path=out / FIGURES[1])
    plots.plot_monitor(pd.read_csv(out / "monitor.csv"), recall, path=out / FIGURES[2])
    plots.plot_gradient_choice(pd.read_csv(out / "gradient_choice.csv"), choice, path=out / FIGURES[3])
    timings["figures"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - _T_START
    timings["cpu_total"] = time.process_time()  # CPU seconds of this process, all threads (on a shared machine
    #                                            the wall time above also counts other programs' load)
    metrics = {"quick": cfg.quick, "seed": cfg.seed, "config": config, "recall_setup": recall_cfg,
               "gradient_choice": choice, **recall, "timings_s": {**recall["timings_s"], **timings},
               "figures": list(FIGURES),
               "files": ["gradient_choice.csv", "gradient_choice.json", "runs.csv", "spectra.csv", "monitor.csv",
                         "floss_curves.csv"]}
    write_json(out / "metrics.json", metrics)  # last: its presence means the run completed
    _stage(f"finished in {timings['total']:.1f}s")
    return metrics


if __name__ == "__main__":
    _cli.run_as_command(main, "flossing")
