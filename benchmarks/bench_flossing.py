"""Gradient flossing's cost: a flossing step against a training step, and the spectrum monitor's overhead.

    python benchmarks/bench_flossing.py [--hidden 32] [--T 80] [--batch 32] [--num 16] [--steps 200]
                                        [--every 10] [--monitor-num 4] [--repeats 5]

The network and task are those of ``experiments.flossing`` (vanilla tanh cell, delayed recall of
one bit, Adam + clipping). Every variant runs ``--steps`` updates inside one jitted ``lax.scan``
(compiled once, outside the timing), median over ``--repeats`` interleaved rounds:

1. one training step (a batch of B sequences, ``rnnjax.fit``) against one flossing step
   (``rnnjax.floss``, one sequence, the top ``--num`` exponents) under each gradient of
   ``lyapunov_of`` (local, frozen_states, exact) and with ``checkpoint=True``;
2. training with the monitor (top ``--monitor-num`` exponents on a T-step probe) every
   ``--every`` steps against plain training -- target: under 20% more time at every = 10;
3. training with the flossing regulariser every ``--every`` steps against plain training;
4. the memory of the flossing gradient (XLA's temporary buffers of the compiled ``jax.grad`` of
   ``flossing_loss``, S = 64, num = 32, T = 300, float32) per gradient, with and without
   ``checkpoint=True`` and ``reorth_every``, against the forward pass alone.

Timings on a shared machine are noisy: compare the ratios, measured in one process.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import jax
import jax.numpy as jnp
import optax

import rnnjax
from rnnjax.data import tasks


def _timed_run(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    w, c = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    return time.perf_counter() - w, time.process_time() - c


def _compiled(fn, *args):
    t = time.perf_counter()
    c = jax.jit(fn).lower(*args).compile()
    return c, time.perf_counter() - t


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--T", type=int, default=80)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--num", type=int, default=16)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--monitor-num", type=int, default=4)
    p.add_argument("--repeats", type=int, default=7)
    cfg = p.parse_args(argv)
    cell = rnnjax.cells.vanilla("tanh")
    model = rnnjax.init_model(cell, jax.random.PRNGKey(0), 2, cfg.hidden, 1)
    xs, ys = tasks.delayed_recall(jax.random.PRNGKey(1), cfg.steps * cfg.batch, cfg.T, cfg.T // 2)
    batches = (xs.reshape(cfg.steps, cfg.batch, cfg.T, 2), ys.reshape(cfg.steps, cfg.batch, 1))
    probe = xs[0].at[:, 0].set(0.0)
    h0 = jnp.zeros(cfg.hidden)
    make_step = lambda m: partial(cell.step, m.cell)
    loss_fn = rnnjax.make_loss(cell, "mse_last")
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    monitor = rnnjax.spectrum_monitor(make_step, h0, probe, num=cfg.monitor_num)
    reg = rnnjax.flossing_regularizer(make_step, h0, lambda b: b[0][0], num=cfg.num)
    floss_x = xs[: cfg.steps].at[..., 0].set(0.0)  # one sequence per flossing step

    def training(**kw):
        return lambda m, b: rnnjax.fit(loss_fn, m, b, opt, num_steps=cfg.steps, **kw)

    def flossing(gradient, checkpoint=False):
        return lambda m, x: rnnjax.floss(make_step, m, h0, x, num=cfg.num, num_steps=cfg.steps,
                                         optimizer=optax.adam(1e-3), gradient=gradient, checkpoint=checkpoint)

    variants = {
        "train": (training(), batches),
        f"train + monitor every {cfg.every}": (training(monitor=monitor, monitor_every=cfg.every), batches),
        f"train + flossing regulariser every {cfg.every}": (training(regularizer=reg, regularize_every=cfg.every),
                                                           batches),
        "floss (local)": (flossing("local"), floss_x),
        "floss (local, checkpoint)": (flossing("local", True), floss_x),
        "floss (frozen_states)": (flossing("frozen_states"), floss_x),
        "floss (exact)": (flossing("exact"), floss_x),
    }
    results, runs, times = {}, {}, {name: [] for name in variants}  # (wall, cpu) per round
    for name, (fn, data) in variants.items():
        compiled, compile_s = _compiled(fn, model, data)
        runs[name] = lambda c=compiled, d=data: c(model, d)
        results[name] = {"compile_s": compile_s}
        jax.block_until_ready(runs[name]())  # warm
    for _ in range(cfg.repeats):  # interleaved rounds, so a load spike hits every variant alike
        for name, run in runs.items():
            times[name].append(_timed_run(run))
    for name in variants:
        results[name]["per_step_ms"] = 1e3 * statistics.median(t[0] for t in times[name]) / cfg.steps
        results[name]["cpu_per_step_ms"] = 1e3 * statistics.median(t[1] for t in times[name]) / cfg.steps
    base, cpu_base = results["train"]["per_step_ms"], results["train"]["cpu_per_step_ms"]
    print(f"H = {cfg.hidden}, T = {cfg.T}, batch {cfg.batch}, flossing num {cfg.num}, {cfg.steps} steps per run, "
          f"median of {cfg.repeats} interleaved rounds. CPU time (this process, all threads) is the steadier "
          "measure on a shared machine; wall time also counts other programs' load.")
    print(f"{'variant':48s} {'CPU ms/step':>12s} {'vs train':>9s} {'wall ms/step':>13s} {'vs train':>9s} "
          f"{'compile s':>10s}")
    for name, r in results.items():
        r["vs_train"], r["cpu_vs_train"] = r["per_step_ms"] / base, r["cpu_per_step_ms"] / cpu_base
        print(f"{name:48s} {r['cpu_per_step_ms']:12.3f} {r['cpu_vs_train']:8.2f}x {r['per_step_ms']:13.3f} "
              f"{r['vs_train']:8.2f}x {r['compile_s']:10.1f}")
    overhead = results[f"train + monitor every {cfg.every}"]["cpu_vs_train"] - 1
    print(f"monitor overhead at every = {cfg.every} (CPU time): {100 * overhead:.1f}% (target < 20%): "
          f"{'OK' if overhead < 0.2 else 'ABOVE TARGET'}")
    results["memory_mb"] = gradient_memory()
    return results


def gradient_memory(S: int = 64, num: int = 32, T: int = 300) -> dict:
    """MB of XLA temporaries of the compiled gradient of flossing_loss (compile only, nothing runs)."""
    cell = rnnjax.cells.vanilla("tanh")
    params = cell.init(jax.random.PRNGKey(0), 2, S)
    xs = jax.random.normal(jax.random.PRNGKey(1), (T, 2))
    loss = lambda q, **kw: rnnjax.flossing_loss(partial(cell.step, q), jnp.zeros(S), xs, num=num, **kw)
    temp_mb = lambda f: jax.jit(f).lower(params).compile().memory_analysis().temp_size_in_bytes / 1e6
    out = {"forward": temp_mb(loss)}
    print(f"\nmemory of the flossing gradient, S = {S}, num = {num}, T = {T}, float32 (MB of temporaries):")
    print(f"  forward pass alone: {out['forward']:.2f}")
    for gradient in ("exact", "local"):
        for checkpoint in (False, True):
            for k in (1, 4):
                name = f"{gradient}, checkpoint={checkpoint}, reorth_every={k}"
                out[name] = temp_mb(jax.grad(partial(loss, gradient=gradient, checkpoint=checkpoint, reorth_every=k)))
                print(f"  {name}: {out[name]:.2f}")
    return out


if __name__ == "__main__":
    main()
