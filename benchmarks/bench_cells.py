"""LSTM / GRU training-step cost vs the vanilla RNN, and the adding-problem sweep's wall time.

    python benchmarks/bench_cells.py [--T 100] [--hidden 32] [--batch 32] [--steps 50] [--repeats 5]
                                     [--sweep-steps 1000] [--no-sweep]

1. Per-sequence training-step time: one Adam + clipping update on a batch (B, T, 2) of the adding
   problem, ``--steps`` updates inside one jitted ``lax.scan`` (:func:`rnnjax.fit` on a
   :class:`rnnjax.Cell`), median over ``--repeats`` runs, divided by steps x B. Rows: the vanilla
   cell (tanh) through the generic path, the same model as a hand-written ``lax.scan`` with
   ``jax.grad`` (no cell protocol: the baseline the generic path must not be slower than), the
   hand BPTT (:func:`rnnjax.train`), LSTM, GRU; ratios against the hand-written scan. Compile
   times are printed separately.
2. The adding-problem sweep of ``experiments.remedies``: 4 models (tanh RNN, IRNN, LSTM, GRU) x 4
   seeds, ``--sweep-steps`` updates each, one vmapped program per model; compile and run wall times apart.
3. PyTorch (only if it is already installed; never installed by this script): the same LSTM/GRU
   step with ``torch.nn.LSTM``/``torch.nn.GRU`` on the CPU, for scale.

Timings on a shared machine are noisy: compare the ratios, measured in one process.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnnjax import cells, fit, init_model, init_rnn, make_loss, train
from rnnjax.data import tasks


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _hand_scan_loss(params, batch):
    """The vanilla RNN's mse_last loss as a hand-written lax.scan (batch-mean), no cell protocol."""
    xs, ys = batch

    def one(x, y):
        h_T, _ = jax.lax.scan(lambda h, x_t: (jnp.tanh(x_t @ params.W_xh + params.b_h + h @ params.W_hh), None),
                              jnp.zeros(params.W_hh.shape[0]), x)
        return 0.5 * jnp.sum((h_T @ params.W_ho + params.b_o - y) ** 2)  # L = 0.5 ||o_T - y||^2

    return jnp.mean(jax.vmap(one)(xs, ys))


def bench_steps(cfg) -> dict:
    xs, ys = tasks.adding_problem_batches(jax.random.PRNGKey(0), cfg.steps, cfg.batch, cfg.T)
    key = jax.random.PRNGKey(1)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    by_fit = lambda loss_fn: (lambda p, x, y: fit(loss_fn, p, (x, y), opt, num_steps=cfg.steps))
    cell_row = lambda cell: (init_model(cell, key, 2, cfg.hidden, 1), by_fit(make_loss(cell, "mse_last")))
    rows = {
        "rnn_tanh (hand-written scan, jax.grad)": (init_rnn(key, 2, cfg.hidden, 1), by_fit(_hand_scan_loss)),
        "rnn_tanh (cell protocol, jax.grad)": cell_row(cells.vanilla("tanh")),
        "rnn_tanh (hand BPTT)": (init_rnn(key, 2, cfg.hidden, 1),
                                 lambda p, x, y: train(p, x, y, loss="mse_last", num_steps=cfg.steps, optimizer=opt,
                                                       method="bptt")),
        "lstm (cell protocol, jax.grad)": cell_row(cells.lstm()),
        "gru (cell protocol, jax.grad)": cell_row(cells.gru()),
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
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    models = {  # name -> (cell, read-out std)
        "rnn_tanh": (cells.vanilla("tanh"), None),
        "irnn": (cells.vanilla("relu", recurrent_init="identity", input_std=1e-3), 1e-3),
        "lstm": (cells.lstm(), None),
        "gru": (cells.gru(), None),
    }
    out = {}
    for name, (cell, std) in models.items():
        params = jax.vmap(lambda k, cell=cell, std=std: init_model(cell, k, 2, cfg.hidden, 1, readout_std=std))(keys)
        loss_fn = make_loss(cell, "mse_last")
        run = jax.jit(lambda p, loss_fn=loss_fn: jax.vmap(
            lambda q: fit(loss_fn, q, (xs, ys), opt, num_steps=cfg.sweep_steps)[1])(p))
        t = time.perf_counter()
        compiled = run.lower(params).compile()
        compile_s = time.perf_counter() - t
        t = time.perf_counter()
        jax.block_until_ready(compiled(params))
        out[name] = (compile_s, time.perf_counter() - t)
    out["total"] = tuple(sum(v[i] for v in out.values()) for i in (0, 1))
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
    ref = steps["rnn_tanh (hand-written scan, jax.grad)"]["per_sequence_us"]
    print(f"\n1. training step (Adam + clipping), median of {cfg.repeats} x {cfg.steps} updates")
    print(f"   {'model':40s} {'compile s':>10s} {'us / sequence':>14s} {'vs hand-written scan':>21s}")
    for name, r in steps.items():
        print(f"   {name:40s} {r['compile_s']:10.2f} {r['per_sequence_us']:14.1f} {r['per_sequence_us'] / ref:20.2f}x")
    result = {"config": vars(cfg), "steps": steps}
    if cfg.sweep:
        sweep = bench_sweep(cfg)
        print(f"\n2. adding-problem sweep, 4 models x 4 seeds x {cfg.sweep_steps} updates (wall s: compile, run)")
        for name, (c, r) in sweep.items():
            print(f"   {name:10s} {c:8.1f} {r:8.1f}")
        result["sweep_s"] = sweep
    torch_times = bench_torch(cfg)
    if torch_times is None:
        print("\n3. PyTorch: not installed, skipped")
    else:
        print("\n3. PyTorch CPU, us / sequence (same step):")
        for name, us in torch_times.items():
            ours = f"{name} (cell protocol, jax.grad)"
            print(f"   {name:10s} {us:10.1f}   rnnjax / torch = {steps[ours]['per_sequence_us'] / us:.2f}")
        result["torch_us_per_sequence"] = torch_times
    return result


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
