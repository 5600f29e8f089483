"""LSTM / GRU training-step cost vs the vanilla RNN, and the adding-problem sweep's wall time.

    python benchmarks/bench_cells.py [--T 100] [--hidden 32] [--batch 32] [--steps 50] [--repeats 5]
                                     [--sweep-steps 1000] [--no-sweep]

1. Per-sequence training-step time: one Adam + clipping update on a batch (B, T, 2) of the adding
   problem, ``--steps`` updates inside one jitted ``lax.scan`` (:func:`rnnjax.gated.train_cell`),
   median over ``--repeats`` runs, divided by steps x B. Rows: vanilla RNN (tanh) by ``jax.grad``
   and by the hand BPTT (:func:`rnnjax.train`), LSTM, GRU; ratios against the vanilla RNN by
   ``jax.grad``. Compile times are printed separately.
2. The adding-problem sweep of ``experiments.remedies``: 4 models (tanh RNN, IRNN, LSTM, GRU) x 4
   seeds, ``--sweep-steps`` updates each, one vmapped program per model; wall time with compile.
3. PyTorch (only if it is already installed; never installed by this script): the same LSTM/GRU
   step with ``torch.nn.LSTM``/``torch.nn.GRU`` on the CPU, for scale.

Timings on a shared machine are noisy: compare the ratios, measured in one process.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from rnnjax import gated, init_rnn, train
from rnnjax.data import tasks


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_steps(cfg) -> dict:
    xs, ys = tasks.adding_problem_batches(jax.random.PRNGKey(0), cfg.steps, cfg.batch, cfg.T)
    key = jax.random.PRNGKey(1)
    opts = dict(loss="mse_last", num_steps=cfg.steps, learning_rate=1e-3, optimizer="adam", clip_norm=1.0)
    rows = {
        "rnn_tanh (jax.grad)": (init_rnn(key, 2, cfg.hidden, 1), lambda p, x, y: gated.train_cell(p, x, y, **opts)),
        "rnn_tanh (hand BPTT)": (init_rnn(key, 2, cfg.hidden, 1),
                                 lambda p, x, y: train(p, x, y, method="bptt", **opts)),
        "lstm (jax.grad)": (gated.init_lstm(key, 2, cfg.hidden, 1), lambda p, x, y: gated.train_cell(p, x, y, **opts)),
        "gru (jax.grad)": (gated.init_gru(key, 2, cfg.hidden, 1), lambda p, x, y: gated.train_cell(p, x, y, **opts)),
    }
    out = {}
    for name, (params, fn) in rows.items():
        jitted = jax.jit(fn)
        t = time.perf_counter()
        compiled = jitted.lower(params, xs, ys).compile()
        compile_s = time.perf_counter() - t
        med = _median_time(lambda compiled=compiled, params=params: compiled(params, xs, ys), cfg.repeats)
        out[name] = {"compile_s": compile_s, "per_sequence_us": 1e6 * med / (cfg.steps * cfg.batch)}
    return out


def bench_sweep(cfg) -> dict:
    xs, ys = tasks.adding_problem_batches(jax.random.PRNGKey(0), cfg.sweep_steps, cfg.batch, cfg.T)
    keys = jax.random.split(jax.random.PRNGKey(2), 4)
    models = {
        "rnn_tanh": (lambda k: init_rnn(k, 2, cfg.hidden, 1), "tanh"),
        "irnn": (lambda k: init_rnn(k, 2, cfg.hidden, 1, recurrent_init="identity", input_std=1e-3,
                                    output_std=1e-3), "relu"),
        "lstm": (lambda k: gated.init_lstm(k, 2, cfg.hidden, 1), "tanh"),
        "gru": (lambda k: gated.init_gru(k, 2, cfg.hidden, 1), "tanh"),
    }
    out, total = {}, time.perf_counter()
    for name, (init, act) in models.items():
        t = time.perf_counter()
        _, hist = gated.train_cell_sweep(jax.vmap(init)(keys), xs, ys, loss="mse_last", num_steps=cfg.sweep_steps,
                                         learning_rate=1e-2, optimizer="adam", clip_norm=1.0, activation=act)
        jax.block_until_ready(hist)
        out[name] = time.perf_counter() - t
    out["total"] = time.perf_counter() - total
    return out


def bench_torch(cfg) -> dict | None:
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    x = torch.rand(cfg.batch, cfg.T, 2)
    y = torch.rand(cfg.batch, 1)
    out = {}
    for name, cls in (("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU), ("rnn_tanh", torch.nn.RNN)):
        rnn, head = cls(2, cfg.hidden, batch_first=True), torch.nn.Linear(cfg.hidden, 1)
        params = list(rnn.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=1e-3)

        def step(rnn=rnn, head=head, params=params, opt=opt):
            opt.zero_grad()
            hs, _ = rnn(x)
            loss = 0.5 * ((head(hs[:, -1]) - y) ** 2).sum(1).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()

        step()
        times = []
        for _ in range(cfg.repeats):
            t = time.perf_counter()
            for _ in range(cfg.steps):
                step()
            times.append(time.perf_counter() - t)
        out[name] = 1e6 * statistics.median(times) / (cfg.steps * cfg.batch)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--T", type=int, default=100)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=50, help="updates per timed run (default: 50)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sweep-steps", type=int, default=1000, help="updates per run in the sweep (default: 1000)")
    p.add_argument("--no-sweep", dest="sweep", action="store_false")
    cfg = p.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; T={cfg.T} hidden={cfg.hidden} batch={cfg.batch}")
    steps = bench_steps(cfg)
    ref = steps["rnn_tanh (jax.grad)"]["per_sequence_us"]
    print(f"\n1. training step (Adam + clipping), median of {cfg.repeats} x {cfg.steps} updates")
    print(f"   {'model':24s} {'compile s':>10s} {'us / sequence':>14s} {'vs RNN (jax.grad)':>18s}")
    for name, r in steps.items():
        print(f"   {name:24s} {r['compile_s']:10.2f} {r['per_sequence_us']:14.1f} {r['per_sequence_us'] / ref:17.2f}x")
    result = {"config": vars(cfg), "steps": steps}
    if cfg.sweep:
        sweep = bench_sweep(cfg)
        print(f"\n2. adding-problem sweep, 4 models x 4 seeds x {cfg.sweep_steps} updates (wall s, compile included)")
        for name, s in sweep.items():
            print(f"   {name:10s} {s:8.1f}")
        result["sweep_s"] = sweep
    torch_times = bench_torch(cfg)
    if torch_times is None:
        print("\n3. PyTorch: not installed, skipped")
    else:
        print("\n3. PyTorch CPU, us / sequence (same step):")
        for name, us in torch_times.items():
            ours = {"lstm": "lstm (jax.grad)", "gru": "gru (jax.grad)", "rnn_tanh": "rnn_tanh (jax.grad)"}[name]
            print(f"   {name:10s} {us:10.1f}   rnnjax / torch = {steps[ours]['per_sequence_us'] / us:.2f}")
        result["torch_us_per_sequence"] = torch_times
    return result


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
