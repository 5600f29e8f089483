"""LSTM / GRU training-step cost vs the vanilla RNN, and the adding-problem sweep's wall time.

    python benchmarks/bench_cells.py [--T 100] [--hidden 32] [--batch 32] [--steps 50] [--repeats 5]
                                     [--sweep-steps 1000] [--no-sweep] [--json PATH]

1. Per-sequence training-step time: one Adam + clipping update on a batch (B, T, 2) of the adding
   problem, ``--steps`` updates inside one jitted ``lax.scan`` (:func:`rnnjax.fit` on a
   :class:`rnnjax.Cell`), median over ``--repeats`` runs, divided by steps x B. Each cell through the
   protocol (the vanilla cell: its hand BPTT, method "auto" on CPU, and ``jax.grad``) against the
   same cell written by hand as one ``lax.scan`` over its equations, vmapped over the batch, with
   ``jax.grad`` (no cell protocol: the baseline the protocol must not be slower than); and
   :func:`rnnjax.train`. Compile times are printed separately.
2. The adding-problem sweep of ``experiments.remedies``: 4 models (tanh RNN, IRNN, LSTM, GRU) x 4
   seeds, ``--sweep-steps`` updates each, one vmapped program per model; compile and run wall times apart.
3. PyTorch (only if it is already installed; never installed by this script): the same LSTM/GRU
   step with ``torch.nn.LSTM``/``torch.nn.GRU`` on the CPU, for scale.
4. Compiled once: each public function's first call (trace + compile + run) and second call with
   new values of the same shapes (T = 50, H = 16), and how many programs the second call traced.

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


def _hand_scan(step, carry0, h_of):
    """A cell written by hand as one lax.scan: its mse_last loss (batch mean), no cell protocol."""

    def loss(model, batch):
        p, r = model

        def one(x, y):
            c_T, _ = jax.lax.scan(lambda c, x_t: (step(p, c, x_t), None), carry0(p), x)
            return 0.5 * jnp.sum((h_of(c_T) @ r.W_ho + r.b_o - y) ** 2)  # L = 0.5 ||o_T - y||^2

        return jnp.mean(jax.vmap(one)(*batch))

    return loss


def _tanh_step(p, h, x):
    return jnp.tanh(x @ p.W_xh + p.b_h + h @ p.W_hh)  # h_t = tanh(x_t W_xh + b_h + h_{t-1} W_hh)


def _lstm_step(p, hc, x):
    h, c = hc
    i, f, g, o = jnp.split(x @ p.W_xh + p.b_h + h @ p.W_hh, 4)  # gates [i|f|g|o]
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)  # c_t = f_t c_{t-1} + i_t g_t
    return jax.nn.sigmoid(o) * jnp.tanh(c), c  # h_t = o_t tanh(c_t)


def _gru_step(p, h, x):
    ur, uz, un = jnp.split(x @ p.W_xh + p.b_xh, 3)
    vr, vz, vn = jnp.split(h @ p.W_hh + p.b_hh, 3)
    r, z = jax.nn.sigmoid(ur + vr), jax.nn.sigmoid(uz + vz)
    return (1 - z) * jnp.tanh(un + r * vn) + z * h  # h_t = (1 - z_t) n_t + z_t h_{t-1}


HAND = {  # name -> (cell, the same cell's step written by hand, its zero carry, its hidden state)
    "rnn_tanh": (cells.vanilla("tanh"), _tanh_step, lambda p: jnp.zeros(p.W_hh.shape[0]), lambda h: h),
    "lstm": (cells.lstm(), _lstm_step, lambda p: (jnp.zeros(p.W_hh.shape[0]),) * 2, lambda hc: hc[0]),
    "gru": (cells.gru(), _gru_step, lambda p: jnp.zeros(p.W_hh.shape[0]), lambda h: h),
}


def bench_steps(cfg) -> dict:
    xs, ys = tasks.adding_problem_batches(jax.random.PRNGKey(0), cfg.steps, cfg.batch, cfg.T)
    key = jax.random.PRNGKey(1)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    by_fit = lambda loss_fn: (lambda p, x, y: fit(loss_fn, p, (x, y), opt, num_steps=cfg.steps))
    rows = {}
    for name, (cell, step, carry0, h_of) in HAND.items():
        model = init_model(cell, key, 2, cfg.hidden, 1)
        rows[f"{name} (hand-written scan, jax.grad)"] = (model, by_fit(_hand_scan(step, carry0, h_of)))
        rows[f"{name} (cell protocol)"] = (model, by_fit(make_loss(cell, "mse_last")))
    rows["rnn_tanh (cell protocol, method=autograd)"] = (
        init_model(cells.vanilla("tanh"), key, 2, cfg.hidden, 1),
        by_fit(make_loss(cells.vanilla("tanh", method="autograd"), "mse_last")))
    rows["rnn_tanh (train)"] = (init_rnn(key, 2, cfg.hidden, 1),
                                lambda p, x, y: train(p, x, y, loss="mse_last", num_steps=cfg.steps, optimizer=opt))
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


def bench_second_calls(T: int = 50, H: int = 16, D: int = 3, O: int = 3) -> dict:
    """Each public function's first and second call (new parameter values and data, same shapes), in ms."""
    import rnnjax

    traces = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: traces.append(event) if event == "/jax/core/compile/jaxpr_trace_duration"
        else None)
    lstm = cells.lstm()
    sgd = optax.sgd(0.1)

    def inputs(seed):
        k = jax.random.PRNGKey(seed)
        xs = jax.random.normal(k, (T, D))
        ys = jax.random.normal(jax.random.fold_in(k, 1), (T, O))
        p, m = init_rnn(k, D, H, O), init_model(lstm, k, D, H, O)
        return xs, ys, jnp.zeros(T, jnp.int32), p, m, lstm.initial_carry(m.cell)

    calls = {
        "unroll (LSTM)": lambda xs, ys, lab, p, m, c: rnnjax.unroll(lstm, m.cell, xs),
        "predict (LSTM)": lambda xs, ys, lab, p, m, c: rnnjax.predict(lstm, m, xs),
        "cell_loss_and_grad (LSTM)": lambda xs, ys, lab, p, m, c: rnnjax.cell_loss_and_grad(lstm, m, xs, ys,
                                                                                             loss="mse"),
        "rnn_forward": lambda xs, ys, lab, p, m, c: rnnjax.rnn_forward(p, xs),
        "loss_and_grad": lambda xs, ys, lab, p, m, c: rnnjax.loss_and_grad(p, xs, ys, loss="mse"),
        "bptt": lambda xs, ys, lab, p, m, c: rnnjax.bptt(p, xs, ys),
        "step_jacobians": lambda xs, ys, lab, p, m, c: rnnjax.step_jacobians(p, xs),
        "lyapunov_spectrum": lambda xs, ys, lab, p, m, c: rnnjax.lyapunov_spectrum(p, xs),
        "lag_profile": lambda xs, ys, lab, p, m, c: rnnjax.lag_profile(p, xs, lab),
        "lyapunov_of (LSTM)": lambda xs, ys, lab, p, m, c: rnnjax.lyapunov_of(rnnjax.cell_step(lstm, m.cell), c, xs),
        "lag_profile_of (LSTM)": lambda xs, ys, lab, p, m, c: rnnjax.lag_profile_of(rnnjax.cell_step(lstm, m.cell),
                                                                                     c, xs, c),
        "jacobians_of (LSTM)": lambda xs, ys, lab, p, m, c: rnnjax.jacobians_of(rnnjax.cell_step(lstm, m.cell), c, xs),
        "states_of (LSTM)": lambda xs, ys, lab, p, m, c: rnnjax.states_of(rnnjax.cell_step(lstm, m.cell), c, xs),
        "train (10 steps)": lambda xs, ys, lab, p, m, c: train(p, xs[None], ys[None], loss="mse", num_steps=10,
                                                               learning_rate=0.1),
        "fit (LSTM, 10 steps)": lambda xs, ys, lab, p, m, c: fit(make_loss(lstm, "mse"), m, (xs[None], ys[None]),
                                                                 sgd, num_steps=10),
    }
    out = {}
    for name, call in calls.items():
        first, second = inputs(0), inputs(1)
        t = time.perf_counter()
        jax.block_until_ready(call(*first))
        t_first = time.perf_counter() - t
        n = len(traces)
        t = time.perf_counter()
        jax.block_until_ready(call(*second))
        out[name] = {"first_ms": 1e3 * t_first, "second_ms": 1e3 * (time.perf_counter() - t),
                     "second_traces": len(traces) - n}
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
    p.add_argument("--json", help="also write the results to this JSON file")
    cfg = p.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; T={cfg.T} hidden={cfg.hidden} batch={cfg.batch}")
    steps = bench_steps(cfg)
    print(f"\n1. training step (Adam + clipping), median of {cfg.repeats} x {cfg.steps} updates")
    print(f"   {'model':44s} {'compile s':>10s} {'us / sequence':>14s} {'vs hand-written scan':>21s}")
    for name, r in steps.items():
        ref = steps[f"{name.split()[0]} (hand-written scan, jax.grad)"]["per_sequence_us"]
        print(f"   {name:44s} {r['compile_s']:10.2f} {r['per_sequence_us']:14.1f} {r['per_sequence_us'] / ref:20.2f}x")
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
            ours = f"{name} (cell protocol)"
            print(f"   {name:10s} {us:10.1f}   rnnjax / torch = {steps[ours]['per_sequence_us'] / us:.2f}")
        result["torch_us_per_sequence"] = torch_times
    second = bench_second_calls()
    print("\n4. compiled once: first and second call (new values, same shapes), T = 50, H = 16")
    print(f"   {'function':28s} {'first ms':>10s} {'second ms':>10s} {'traced':>7s}")
    for name, r in second.items():
        print(f"   {name:28s} {r['first_ms']:10.1f} {r['second_ms']:10.2f} {r['second_traces']:7d}")
    result["second_calls"] = second
    if cfg.json:
        import json

        with open(cfg.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
