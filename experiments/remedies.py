"""The remedies of report §4, measured: gradient clipping, gated cells (LSTM, GRU), IRNN/orthogonal inits.

    python -m experiments.remedies [--out DIR] [--quick] [--seed 0] [--adding-T 100] [--adding-steps 20000]

Three parts, each writing CSV/JSON beside its figure:

1. Clipping (``fig7_clipping.png``): Experiment 2's vanilla RNN (text, hidden 50, ReLU, W_hh = rho W,
   segments of 50, SGD, 200 steps) at rho = 1.2, at the report's learning rate and larger ones,
   each with and without ``clip_by_global_norm(tau)``: loss and gradient norm per step, the
   fraction of clipped steps, and whether (and when) each run went non-finite.
2. Adding problem (``fig9_adding_problem.png``): T = 100, vanilla tanh RNN, IRNN, LSTM, GRU with
   the same settings (Adam, clipping, batch, the same fresh batch at every step) and the same
   budget of updates, several seeds, one vmapped program per cell; plus the vanilla variants of
   part 3 (one seed each). The budget is long (a 1,000-update budget had decided the vanilla
   cells' outcome by itself); a cell stops early once every one of its runs is solved
   (steps-to-solve cannot change after that). The MSE curve is the loss of each step's fresh batch before its
   update (unseen data, so an estimate of the test MSE), smoothed; the headline number is the
   steps to MSE < 0.01; test MSE on a held-out set after training; baseline 1/6.
3. Lag profiles (``fig8_lag_profiles_by_cell.png``): ||dL_T/dh_{T-k}|| vs k on adding-problem
   sequences for RNN(tanh), RNN(ReLU, rho 0.9 / 0.99 / 1.2), IRNN, orthogonal, LSTM (also through
   the cell state c), GRU, at initialisation and after part 2's training (seed 0).
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()

import argparse  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from experiments import _cli  # noqa: E402
from experiments._progress import Progress, StageLog  # noqa: E402
from experiments.job import start  # noqa: E402
from rnnjax.analysis import log_lag_profile_of, state_grads_of, states_of  # noqa: E402
from rnnjax.bptt import resolve_method  # noqa: E402
from rnnjax.cells import get_cell, init_rnn  # noqa: E402
from rnnjax.data import tasks  # noqa: E402
from rnnjax.data.text import fox_segments  # noqa: E402
from rnnjax.io import write_csv, write_json  # noqa: E402
from rnnjax.losses import get_loss  # noqa: E402
from rnnjax.scan import init_model, make_loss, predict, readout  # noqa: E402
from rnnjax.train import first_nonfinite_step, make_optimizer, run_steps, train  # noqa: E402

# name -> (cell, cell options, read-out std or None for 1/sqrt(H)); the first four are the adding problem's
# headline models. Only "activation" changes a cell's step; the other options change its initialisation.
MODELS = {
    "rnn_tanh": ("rnn", {"activation": "tanh", "recurrent_init": "gaussian", "rho": 1.0}, None),
    "irnn": ("rnn", {"activation": "relu", "recurrent_init": "identity", "rho": 1.0, "input_std": 1e-3}, 1e-3),
    "lstm": ("lstm", {"forget_bias": 1.0}, None),
    "gru": ("gru", {}, None),
    "rnn_relu_rho0.9": ("rnn", {"activation": "relu", "recurrent_init": "gaussian", "rho": 0.9}, None),
    "rnn_relu_rho0.99": ("rnn", {"activation": "relu", "recurrent_init": "gaussian", "rho": 0.99}, None),
    "rnn_relu_rho1.2": ("rnn", {"activation": "relu", "recurrent_init": "gaussian", "rho": 1.2}, None),
    "rnn_orthogonal": ("rnn", {"activation": "tanh", "recurrent_init": "orthogonal", "rho": 1.0}, None),
}
HEADLINE = ("rnn_tanh", "irnn", "lstm", "gru")
THRESHOLD = 0.01  # "solved": MSE below 0.01
CHUNK = 1000  # updates per training chunk; a group stops after the chunk in which its last run solved
PIECE = 50  # at most this many updates per call of the compiled program (~0.5-1.5 s on 2 cores): progress, Ctrl-C
SMOOTH = 50  # steps in the running mean of the fresh-batch MSE


def build_parser() -> argparse.ArgumentParser:
    p = _cli.Parser("remedies", __doc__)
    p.add_argument("--out", type=Path, help="output folder, replaced as a whole when the run completes "
                   "(default: runs/remedies-<date>-<time>/)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (same code, tiny sizes: "
                   + ", ".join(f"{k}={v}" for k, v in QUICK.items()) + "; defaults: a flag given explicitly wins)")
    _cli.add_force(p)
    _cli.add_seed_base(p, max=_cli.SEED_MAX - 1)  # every key of base B splits from PRNGKey(B) (and B + 1)
    c = p.add_argument_group("1. clipping (Experiment 2's setup)")
    c.add_argument("--clip-rho", type=_cli.number(float, min=0, min_open=True, max=1e3), default=1.2,
                   help="rho of W_hh = rho W (default: 1.2)")
    c.add_argument("--clip-lrs", type=_cli.learning_rate, nargs="+", action=_cli.Distinct, default=[1e-4, 1e-3, 1e-2],
                   help="SGD learning rates, each run with and without clipping (default: 1e-4 1e-3 1e-2)")
    c.add_argument("--clip-tau", type=_cli.positive_float, default=50.0,
                   help="clip_by_global_norm threshold (default: 50)")
    c.add_argument("--clip-steps", type=_cli.number(int, min=1, max=10**7), default=200,
                   help="updates (default: 200, the report's)")
    a = p.add_argument_group("2. adding problem")
    a.add_argument("--adding-T", type=_cli.number(int, min=2, max=100_000), default=100,
                   help="sequence length (default: 100)")
    a.add_argument("--adding-steps", type=_cli.number(int, min=1, max=10**7), default=20000,
                   help="budget of Adam updates, a fresh batch each; a cell stops early once all its runs reach "
                        "MSE < 0.01 (default: 20000)")
    a.add_argument("--adding-seeds", type=_cli.number(int, min=1, max=10_000), default=4,
                   help="seeds per headline model (default: 4)")
    a.add_argument("--batch", type=_cli.positive_int, default=32, help="sequences per update (default: 32)")
    a.add_argument("--hidden", type=_cli.positive_int, default=32, help="hidden units of every model (default: 32)")
    a.add_argument("--lr", type=_cli.learning_rate, default=3e-3,
                   help="Adam learning rate, every model (default: 3e-3)")
    a.add_argument("--clip", type=_cli.positive_float, default=1.0,
                   help="global-norm clipping, every model (default: 1)")
    a.add_argument("--test-size", type=_cli.positive_int, default=2000, help="held-out sequences (default: 2000)")
    a.add_argument("--models", nargs="+", action=_cli.Distinct, choices=list(MODELS), default=list(MODELS),
                   help="models to train and profile (default: all)")
    a.add_argument("--no-variants", dest="variants", action="store_false",
                   help="only the headline models (tanh RNN, IRNN, LSTM, GRU); by default the ReLU RNN at "
                        "rho 0.9/0.99/1.2 and the orthogonal tanh RNN are trained too (one seed each)")
    a.add_argument("--profile-seqs", type=_cli.positive_int, default=32,
                   help="sequences averaged per lag profile (default: 32)")
    return p


QUICK = dict(clip_lrs=[1e-4, 1e-2], clip_steps=40, adding_T=20, adding_steps=60, adding_seeds=2, batch=8, hidden=8,
             test_size=64, profile_seqs=4, variants=False)  # --quick's sizes: defaults, an explicit flag wins


_stage = StageLog("remedies", _T_START)


@partial(jax.jit, static_argnames=("program",))
def _compiled(*args, program):
    """``program(*args)`` as one jitted program; ``program`` is a hashable configuration (a NamedTuple)."""
    return program(*args)


# --------------------------------------------------------------------------------------- 1. clipping

class _Clipping(NamedTuple):
    """One compiled program: Experiment 2's initial RNN trained at every learning rate, unclipped and clipped."""

    rho: float
    tau: float
    steps: int
    hidden: int

    def __call__(self, key, xs, ys, lrs):
        V = xs.shape[-1]
        params = init_rnn(key, V, self.hidden, V, rho=self.rho)  # W_hh = rho W, W ~ N(0, std 1/sqrt(H)) (report §5)
        run = lambda tau: jax.vmap(lambda lr: train(params, xs, ys, loss="xent", num_steps=self.steps,
                                                    learning_rate=lr, activation="relu", clip_norm=tau)[1])(lrs)
        return run(None), run(self.tau)


def run_clipping(cfg, out: Path) -> dict:
    seg = fox_segments(repeats=20 if cfg.quick else 200)
    xs, ys = jnp.asarray(seg.inputs), jnp.asarray(seg.targets)
    program = _Clipping(float(cfg.clip_rho), float(cfg.clip_tau), cfg.clip_steps, 50)
    histories = _compiled(jax.random.PRNGKey(cfg.seed), xs, ys, jnp.asarray(cfg.clip_lrs, jnp.float32),
                          program=program)
    rows, runs = [], []
    for tau, hist in zip((None, cfg.clip_tau), histories, strict=True):
        bad = np.asarray(first_nonfinite_step(hist))
        for i, lr in enumerate(cfg.clip_lrs):
            n = cfg.clip_steps if bad[i] < 0 else int(bad[i])  # keep only the finite steps
            gn = np.asarray(hist.grad_norm[i, :n])
            rows.append(pd.DataFrame({"lr": lr, "clipped": tau is not None, "step": np.arange(n),
                                      "loss": np.asarray(hist.loss[i, :n]), "grad_norm": gn,
                                      "grad_norm_clipped": np.asarray(hist.grad_norm_clipped[i, :n])}))
            runs.append({"lr": lr, "clip_norm": tau, "finite": bool(bad[i] < 0),
                         "first_nonfinite_step": None if bad[i] < 0 else int(bad[i]),
                         "fraction_clipped": float(np.mean(gn > tau)) if tau is not None and n else 0.0,
                         "initial_loss": float(hist.loss[i, 0]),
                         "final_loss": float(hist.loss[i, n - 1]) if bad[i] < 0 else None,  # a diverged run has none
                         "last_finite_loss": float(hist.loss[i, n - 1]) if n else None,
                         "max_grad_norm": float(gn.max()) if n else None,
                         "median_grad_norm": float(np.median(gn)) if n else None})
    write_csv(out / "clipping.csv", pd.concat(rows, ignore_index=True))
    summary = {"rho": cfg.clip_rho, "tau": cfg.clip_tau, "steps": cfg.clip_steps, "hidden": 50, "activation": "relu",
               "optimizer": "sgd", "loss": "xent summed over a 50-step segment", "runs": runs}
    write_json(out / "clipping.json", summary)
    return summary


# ---------------------------------------------------------------------------------- 2. adding problem

def lag_profiles(cell, model, xs, target) -> dict:
    """Natural-log lag profiles of the last step's loss L_T along one sequence ``xs (T, D)`` (report §4.1).

    ``"state"``: log ||dL_T/ds_{T-k}|| over the whole carry s, k = 0..T-1 (renormalised, overflow-free);
    and one entry per field of a NamedTuple carry (an LSTM's ``"h"`` and ``"c"``), or ``"h"`` = the
    state for an array carry. A part below the smallest normal float reads as log(tiny).
    """
    step, c0 = (lambda c, x: cell.step(model.cell, c, x)), cell.initial_carry(model.cell)
    c_T = jax.tree.map(lambda a: a[-1], states_of(step, c0, xs))
    L_T = lambda c: get_loss("mse_last").value(readout(model.readout, cell.hidden(c))[None], target)  # L_T(y_T)
    g_T = jax.grad(L_T)(c_T)  # dL_T/dcarry_T
    out = {"state": log_lag_profile_of(step, c0, xs, g_T)}
    if not hasattr(c0, "_fields"):
        return out | {"h": out["state"]}  # the carry is h
    grads = state_grads_of(step, c0, xs, g_T)  # each field (T, H), time order
    tiny = jnp.finfo(xs.dtype).tiny
    for field in c0._fields:
        norms = jnp.linalg.norm(getattr(grads, field), axis=-1)[::-1]  # lag order
        out[field] = jnp.log(jnp.maximum(norms, tiny))
    return out


def _cell(name: str, activation: str | None, method: str | None = None):
    """The group's cell: its step (only ``activation`` changes a step; the other options change the init) and,
    for the vanilla cell, its gradient ``method``."""
    options = {} if activation is None else {"activation": activation}
    return get_cell(name, **options, **({} if method is None or name != "rnn" else {"method": method}))


class _Init(NamedTuple):
    """Initial parameters of every run of one (cell, activation) group, stacked on a leading run axis."""

    cell: str
    members: tuple  # ((model name, number of seeds), ...)
    hidden: int

    def __call__(self, k_init):
        stacks = []
        for name, n in self.members:
            keys = jax.random.split(jax.random.fold_in(k_init, list(MODELS).index(name)), n)  # stable per model
            _, options, readout_std = MODELS[name]
            member = get_cell(self.cell, **options)  # the group's step, this model's initialisation
            init = lambda k, c=member, std=readout_std: init_model(c, k, 2, self.hidden, 1, readout_std=std)
            stacks.append(jax.vmap(init)(keys))
        return jax.tree.map(lambda *a: jnp.concatenate(a), *stacks)


class _Chunk(NamedTuple):
    """``steps`` Adam updates of every run of a group, each on the same fresh batch per step: one program of
    :func:`rnnjax.train.run_steps`, vmapped over the runs.

    Step s trains on ``adding_problem(fold_in(key, s), batch, T)``, so the data do not depend on the
    budget or the chunking; params, optimiser state and halted flag carry over from chunk to chunk (one
    Adam run). The first non-finite step halts a run (its params and state keep their last finite values).
    Returns the new state and, per run and step, the batch MSE before the update and its finiteness.
    ``method``: the gradient, ``jax.grad`` through the cell (``"autograd"``), or for the vanilla cell its
    hand BPTT (``"bptt"``, report §2.2; :func:`gradient_method` picks it on CPU, where it is faster).
    """

    cell: str
    activation: str | None
    steps: int
    batch: int
    T: int
    lr: float
    clip: float
    method: str = "autograd"

    def optimizer(self):
        return make_optimizer(self.lr, clip_norm=self.clip, name="adam")

    def gradient(self):
        """``(model, (xs (B, T, 2), ys (B, 1))) -> (loss, grads)``: batch mean of 0.5 (y_T - y)^2, its gradient
        (for the vanilla cell with ``method="bptt"``, its hand BPTT: the cell's own gradient)."""
        return jax.value_and_grad(make_loss(_cell(self.cell, self.activation, self.method), "mse_last"))

    def __call__(self, params, opt_state, alive, key, start):
        gradient = self.gradient()
        data = lambda s: tasks.adding_problem(jax.random.fold_in(key, s), self.batch, self.T)  # fresh batch s

        def run(p, o, ok):  # one run continued for `steps` updates from step `start`
            p, o, ok, h = run_steps(lambda p, batch, carry: (*gradient(p, batch), carry), p, data, self.optimizer(),
                                    num_steps=self.steps, start=start, opt_state=o, alive=ok, return_state=True)
            return p, o, ok, 2.0 * h.loss, h.finite  # mse_last is 0.5 (y_T - y)^2 with O = 1: MSE = 2 loss

        return jax.vmap(run)(params, opt_state, alive)  # curves (runs, steps); the data are shared, not vmapped


class _Evaluate(NamedTuple):
    """Test MSE of every run, and the log lag profiles of the given runs (seed 0 of each model), per sequence."""

    cell: str
    activation: str | None

    def __call__(self, params, test_x, test_y, prof_x, prof_y, first):
        cell = _cell(self.cell, self.activation)
        y_T = lambda p: jax.vmap(lambda x: predict(cell, p, x)[-1])(test_x)  # (B, O)
        test = jax.vmap(lambda p: jnp.mean((y_T(p) - test_y) ** 2))(params)  # test MSE of y_T, per run
        per_sequence = lambda p: jax.vmap(lambda x, y: lag_profiles(cell, p, x, y))(prof_x, prof_y)
        profiles = jax.vmap(per_sequence)(jax.tree.map(lambda a: a[first], params))  # (models, N, T) natural logs
        return test, profiles


def _groups(cfg) -> list[tuple[str, str | None, tuple]]:
    """Headline models get every seed, the other vanilla variants one; one group per (cell, activation)."""
    members: dict = {}
    for name, (cell, options, _) in MODELS.items():
        if name not in cfg.models or (name not in HEADLINE and not cfg.variants):
            continue
        members.setdefault((cell, options.get("activation")), []).append(
            (name, cfg.adding_seeds if name in HEADLINE else 1))
    return [(cell, act, tuple(m)) for (cell, act), m in members.items()]


def gradient_method(cell: str) -> str:
    """The vanilla cell's hand BPTT where ``method="auto"`` picks it (CPU: 0.67x the time of ``jax.grad`` per
    update of the tanh group, 0.78x of the ReLU group, measured), else ``jax.grad``; gated cells: ``jax.grad``."""
    return resolve_method("auto") if cell == "rnn" else "autograd"


def piece_size(steps: int) -> int:
    """Updates per call for a chunk of ``steps``: the largest divisor of ``steps`` up to :data:`PIECE`, so a chunk
    is one compiled program called ``steps / piece`` times (a different split would compile another program)."""
    return max(d for d in range(1, min(PIECE, steps) + 1) if steps % d == 0)


def train_until_solved(cfg, cell, activation, members, k_init, k_train, progress=None):
    """Train every run of a group for up to ``cfg.adding_steps`` updates, in chunks of ``CHUNK``, and stop
    after the chunk in which the last run got solved (or went non-finite): training past that point
    cannot change any run's steps-to-solve, and the unsolved runs are the ones the budget is for.

    Each chunk runs as pieces of :func:`piece_size` updates, the same compiled program continued
    (:func:`rnnjax.train.run_steps`: ``start``, ``opt_state``, ``alive``), so the results equal one call per
    chunk while Python regains control every second or so: ``progress.update(steps done)`` is called
    there, and Ctrl-C is answered there.

    Returns ``(params0, params, mse (runs, trained), finite (runs, trained), smooth, solved_index)``.
    """
    params0 = _compiled(k_init, program=_Init(cell, members, cfg.hidden))
    steps = min(CHUNK, cfg.adding_steps)
    chunk = _Chunk(cell, activation, steps, cfg.batch, cfg.adding_T, float(cfg.lr), float(cfg.clip),
                   gradient_method(cell))
    runs = sum(n for _, n in members)
    params, opt_state = params0, jax.vmap(chunk.optimizer().init)(params0)
    alive, mse, finite = jnp.ones(runs, bool), [], []
    done = 0
    while done < cfg.adding_steps:
        n = min(steps, cfg.adding_steps - done)
        piece = piece_size(n)
        program = chunk._replace(steps=piece)
        for first in range(done, done + n, piece):
            params, opt_state, alive, m, f = _compiled(params, opt_state, alive, k_train, jnp.int32(first),
                                                       program=program)
            mse.append(np.asarray(m))
            finite.append(np.asarray(f))
            if progress is not None:
                progress(first + piece)
        done += n
        smooth = tasks.running_mean(np.concatenate(mse, 1), SMOOTH)
        solved = tasks.first_step_below(smooth, THRESHOLD)
        if np.all((solved >= 0) | ~np.asarray(alive)):
            break
    return params0, params, np.concatenate(mse, 1), np.concatenate(finite, 1), smooth, solved


def _seed_record(s, bad, test_mse, solved, last_smooth):
    return {"seed": s, "finite": bool(bad < 0), "first_nonfinite_step": None if bad < 0 else int(bad),
            # a run that went non-finite kept its last finite parameters: their test error measures no trained model
            "test_mse": float(test_mse) if np.isfinite(test_mse) and bad < 0 else None,
            "steps_to_mse_0.01": None if solved < 0 else int(solved) + 1,
            "last_mse_smooth": None if last_smooth is None or not np.isfinite(last_smooth) else float(last_smooth)}


def _model_summary(r: dict) -> dict:
    te = [s["test_mse"] for s in r["seeds"] if s["test_mse"] is not None]
    st = [s["steps_to_mse_0.01"] for s in r["seeds"] if s["steps_to_mse_0.01"] is not None]
    stat = lambda f, v: float(f(v)) if v else None
    return {**r, "test_mse_mean": stat(np.mean, te), "test_mse_min": stat(np.min, te), "test_mse_max": stat(np.max, te),
            "solved_seeds": len(st), "num_seeds": len(r["seeds"]), "median_steps_to_mse_0.01": stat(np.median, st),
            "min_steps_to_mse_0.01": stat(np.min, st), "max_steps_to_mse_0.01": stat(np.max, st)}


def _exactly_zero(v: np.ndarray) -> np.ndarray:
    """(N,) bool: the sequences whose backward signal became exactly 0 at some lag, given log norms v (N, K).

    Once every unit is off at a step (ReLU) the vector-Jacobian product is exactly 0; the log lag profile
    then adds log(tiny) per further lag (or sits at log(tiny), for the LSTM's unrenormalised c-part), a
    number that depends only on the float type. Such a sequence has no finite log profile (-inf).
    """
    log_tiny = float(np.log(np.finfo(v.dtype).tiny))
    return (v <= log_tiny + 1e-3).any(-1) | (np.diff(v, axis=-1) <= log_tiny + 1.0).any(-1)


def _profile_rows(name, stage, profiles, j, lags):
    """Rows of lag_profiles.csv and the gains of model j: the geometric mean over the sequences whose gradient
    stayed non-zero at every lag, and how many did not (their log norm is -inf; they are left out, not averaged)."""
    start = {"c": 1}  # the LSTM's c-part is exactly 0 at lag 0 (L_T sees c_T only through h_T): omitted
    raw = {part: np.asarray(v[j])[:, start.get(part, 0):] for part, v in profiles.items()}  # (N, K) ln
    zero = {part: _exactly_zero(v) for part, v in raw.items()}
    logs = {part: v[~zero[part]].mean(0) / np.log(10.0) for part, v in raw.items() if (~zero[part]).any()}
    rows = [pd.DataFrame({"model": name, "stage": stage, "part": part, "lag": lags[start.get(part, 0):],
                          "log10_norm": v}) for part, v in logs.items()]
    gain = lambda part, ref="state": (float(logs[part][-1] - logs[ref][0])  # log10 ||dL/d._1|| / ||dL/ds_T||
                                      if part in logs and ref in logs else None)
    gains = {"log10_gain_state": gain("state"), "log10_gain_h": gain("h", "h"),
             "sequences_exactly_zero": {part: int(z.sum()) for part, z in zero.items()}}
    if "c" in raw:
        gains["log10_gain_c_vs_state_lag0"] = gain("c")
    return rows, gains


def run_adding_and_profiles(cfg, out: Path):
    T, B = cfg.adding_T, cfg.batch
    k_train, k_test, k_prof, k_init = jax.random.split(jax.random.PRNGKey(cfg.seed + 1), 4)
    test_x, test_y = tasks.adding_problem(k_test, cfg.test_size, T)  # budget-independent held-out sets
    prof_x, prof_y = tasks.adding_problem(k_prof, cfg.profile_seqs, T)
    curves, results, profile_rows, gains, timings, methods = [], {}, [], {}, {}, {}
    lags = np.arange(T)
    groups = _groups(cfg)
    progress = Progress(f"[remedies] adding problem, {len(groups)} groups x a budget of {cfg.adding_steps:,} (a group "
                        "stops early once solved)", total=len(groups) * cfg.adding_steps)
    for g, (cell, activation, members) in enumerate(groups):
        t0 = time.perf_counter()
        params0, params, mse, finite, smooth, solved = train_until_solved(
            cfg, cell, activation, members, k_init, k_train,
            progress=lambda done, g=g: progress.update(g * cfg.adding_steps + done))
        first = np.cumsum([0] + [n for _, n in members[:-1]])  # the seed-0 run of each model
        evaluate = _Evaluate(cell, activation)
        test_mse, trained_prof = _compiled(params, test_x, test_y, prof_x, prof_y, first, program=evaluate)
        _, init_prof = _compiled(params0, test_x, test_y, prof_x, prof_y, first, program=evaluate)
        profiles = {"init": init_prof, "trained": trained_prof}
        key = cell if activation is None else f"{cell}_{activation}"
        timings[key], methods[key] = time.perf_counter() - t0, gradient_method(cell)
        trained = mse.shape[1]
        runs = sum(n for _, n in members)
        _stage(f"  {key}: {runs} runs x {trained} of {cfg.adding_steps} steps in {timings[key]:.1f}s")
        bad = np.where((~finite).any(1), np.argmax(~finite, 1), -1)
        test_mse = np.asarray(test_mse)
        i = 0
        for j, (name, n) in enumerate(members):
            _, options, readout_std = MODELS[name]
            r = results.setdefault(name, {"cell": cell, "activation": activation,
                                          "init": {**options, "readout_std": readout_std},
                                          "trained_steps": trained, "seeds": []})
            for s in range(n):
                stop = trained if bad[i] < 0 else int(bad[i])  # only finite steps are saved
                curves.append(pd.DataFrame({"model": name, "seed": s, "step": np.arange(stop), "mse": mse[i, :stop],
                                            "mse_smooth": smooth[i, :stop]}))
                last = smooth[i, stop - 1] if stop else None
                r["seeds"].append(_seed_record(s, bad[i], test_mse[i], solved[i], last))
                i += 1
            for stage in ("init", "trained"):
                rows, g = _profile_rows(name, stage, profiles[stage], j, lags)
                profile_rows += rows
                gains.setdefault(name, {})[stage] = g
    progress.close()
    results = {name: _model_summary(results[name]) for name in MODELS if name in results}
    solve_steps = [x for r in results.values() for x in (s["steps_to_mse_0.01"] for s in r["seeds"]) if x]
    write_csv(out / "adding_curves.csv", pd.concat(curves, ignore_index=True))
    adding = {"T": T, "batch": B, "hidden": cfg.hidden, "steps": cfg.adding_steps, "budget": cfg.adding_steps,
              "chunk": min(CHUNK, cfg.adding_steps), "optimizer": "adam", "lr": cfg.lr,
              "clip_norm": cfg.clip, "seeds_headline": cfg.adding_seeds, "threshold": THRESHOLD,
              "smoothing_window": SMOOTH, "baseline_mse": tasks.ADDING_BASELINE_MSE,
              "baseline_mse_on_test_set": float(tasks.constant_predictor_mse(test_y)), "test_size": cfg.test_size,
              "headline": list(HEADLINE),
              "stopping": "each (cell, activation) group trains in chunks and stops after the chunk in which its "
                          "last run reached MSE < threshold, else at the budget",
              "slowest_solve": max(solve_steps) if solve_steps else None,
              "budget_over_slowest_solve": cfg.adding_steps / max(solve_steps) if solve_steps else None,
              "curve": f"MSE of each step's fresh batch before its update (unseen data), running mean over {SMOOTH}",
              "models": results, "seconds_per_program": timings,
              "gradient_method": methods}  # per group: "bptt" (the vanilla cell's hand BPTT) or "autograd"
    write_json(out / "adding.json", adding)
    write_csv(out / "lag_profiles.csv", pd.concat(profile_rows, ignore_index=True))
    lag = {"T": T, "sequences": cfg.profile_seqs, "loss": "mse_last on the adding problem (L_T)",
           "average": "mean over sequences of log10 norms (a geometric mean), over the sequences whose gradient stayed "
                      "non-zero at every lag; sequences_exactly_zero counts the others (their log norm is -inf)",
           "trained": "seed 0 after part 2",
           "gains": "log10 of ||dL_T/d(.)_1|| / ||dL_T/d(.)_T||, the change over the whole sequence (lag T-1)",
           "parts": {"state": "||dL_T/ds_{T-k}||, s the whole recurrent state (h, or (h, c) for the LSTM)",
                     "h": "||dL_T/dh_{T-k}||",
                     "c": "||dL_T/dc_{T-k}||, the LSTM's cell state, from lag 1 (exactly 0 at lag 0)"},
           "models": gains}
    write_json(out / "lag_profiles.json", lag)
    return adding, lag


# ------------------------------------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    cfg = parser.parse_args(argv)
    start(host_devices=False)  # before JAX starts its backend: compile settings and cache
    if cfg.quick:
        _cli.apply_quick(parser, argv, cfg, QUICK)
    runs = cfg.adding_seeds * len(cfg.models)
    sequences = min(CHUNK, cfg.adding_steps) * cfg.batch + cfg.test_size + cfg.profile_seqs  # data drawn per chunk
    _cli.check_memory(4.0 * (sequences * cfg.adding_T * 3 + runs * cfg.batch * cfg.adding_T * cfg.hidden * 4 * 8
                             + runs * 24 * cfg.hidden**2 + runs * cfg.adding_steps * 8),
                      f"the adding problem ({cfg.adding_steps:,} steps x {cfg.batch} sequences of {cfg.adding_T}, "
                      f"--hidden {cfg.hidden}, {runs} runs)",
                      "use fewer --adding-steps, a smaller --batch, --hidden or --adding-T")
    final = _cli.check_out(cfg.out or _cli.default_out("remedies"), experiment="remedies", force=cfg.force)
    with _cli.atomic_folder(final, "remedies", force=cfg.force) as out:
        metrics = _run(cfg, out)
    _stage(f"done: {final}/ (metrics.json and {len(metrics['figures'])} figures)")
    return metrics


def _run(cfg, out: Path) -> dict:
    from rnnjax.plots import remedies as plots

    timings = {}
    t = time.perf_counter()
    _stage("1/3 clipping")
    clipping = run_clipping(cfg, out)
    timings["clipping"] = time.perf_counter() - t
    for r in clipping["runs"]:
        state = "finite" if r["finite"] else f"NON-FINITE at step {r['first_nonfinite_step']}"
        clip = "no clipping" if r["clip_norm"] is None else f"clipping at {r['clip_norm']:g}"
        loss = (f"final loss {r['final_loss']:.3g}" if r["finite"] else "no finite step" if r["last_finite_loss"]
                is None else f"last finite loss {r['last_finite_loss']:.3g} (diverged)")
        print(f"  lr {r['lr']:g}, {clip}: {state}, {loss}, clipped {r['fraction_clipped']:.1%} of steps")
    t = time.perf_counter()
    _stage("2/3 adding problem and 3/3 lag profiles (one program per cell)")
    adding, lag = run_adding_and_profiles(cfg, out)
    timings["adding_and_lag_profiles"] = time.perf_counter() - t
    for name, r in adding["models"].items():
        steps = [s["steps_to_mse_0.01"] for s in r["seeds"]]
        mean = "n/a" if r["test_mse_mean"] is None else f"{r['test_mse_mean']:.4f}"
        print(f"  {name:18s} MSE < {THRESHOLD} in {r['solved_seeds']}/{r['num_seeds']} seeds within "
              f"{adding['budget']} steps, at steps {', '.join('-' if x is None else str(x) for x in steps)}; "
              f"trained {r['trained_steps']} steps, test MSE mean {mean}")
    t = time.perf_counter()
    figures = ["fig7_clipping.png", "fig8_lag_profiles_by_cell.png", "fig9_adding_problem.png"]
    plots.plot_clipping(pd.read_csv(out / "clipping.csv"), clipping, path=out / figures[0])
    plots.plot_lag_profiles(pd.read_csv(out / "lag_profiles.csv"), path=out / figures[1])
    plots.plot_adding(pd.read_csv(out / "adding_curves.csv"), adding, path=out / figures[2])
    timings["figures"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - _T_START
    metrics = {"quick": cfg.quick, "seed": cfg.seed, "clipping": clipping, "adding": adding, "lag_profiles": lag,
               "timings_s": timings, "figures": figures,
               "files": ["clipping.csv", "clipping.json", "adding_curves.csv", "adding.json", "lag_profiles.csv",
                         "lag_profiles.json"]}
    write_json(out / "metrics.json", metrics)
    return metrics


if __name__ == "__main__":
    _cli.run_as_command(main, "remedies")
