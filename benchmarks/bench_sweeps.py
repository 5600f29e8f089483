"""Speed of the rho sweeps (issues 4, 12, 17, 21): one vmapped program vs a loop of jitted runs vs NumPy, a user's
own cell swept by rnnjax.sweep, sharding over host devices, the Lanczos norm against the exact SVD, the Lyapunov
spectrum at H = 50, T = 10,000, and (``--scale``) the cost per run and peak memory from 64 to 16,384 runs.

    python benchmarks/bench_sweeps.py [--rhos 64] [--steps 200] [--numpy-runs 4] [--repeats 3] [--devices N]
                                      [--json FILE] [--scale [64,1024,4096,16384]] [--scale-before MAX]

Experiment 2's sweep: ``--rhos`` values of rho in [0.8, 1.3] (all of them train finitely) x 1 seed x
``--steps`` SGD steps of the 50-unit ReLU RNN on the fox text (segments of 50, cross-entropy, lr 1e-4),
every run recording what :func:`rnnjax.train` records (loss, gradient norms, ||dL/dW_hh||_2 by Lanczos):

* ``sweep 1 device`` -- :func:`rnnjax.sweeps.train_sweep` on one device: one jitted, vmapped program;
* ``sweep N devices`` -- the same sharded over every host device (``--devices``, default one per core,
  set before JAX starts);
* ``sweep N devices, batch_size=1`` -- the same, each device training its runs one after another
  (``train_sweep(..., batch_size=1)``);
* ``loop``  -- a Python loop of jitted single :func:`rnnjax.train` runs (one compiled program);
* ``numpy`` -- ``benchmarks/_numpy_rnn.py``'s hand BPTT + SGD (its exact SVD norm each step, as the
  old rnnjax did), timed on ``--numpy-runs`` rhos and scaled to all of them; single-threaded OpenBLAS
  (its threads only slow it down on a shared 2-core machine: the stronger baseline).

The contenders run interleaved, round after round, in this one process, so a change in the machine's
load hits them all; each line gives wall and process-CPU seconds (medians of ``--repeats`` rounds) and
the first call's extra cost (compile; first-call wall minus the median run). Then the same sweep with
``spec_norm="svd"`` (exact, a LAPACK call: one device under jaxlib 0.10) gives the Lanczos estimate's
worst relative error against the SVD over every finite step of every run.

A user's own cell, swept the same way (``rnnjax.sweep``): a cell with a tuple carry (h, c) (the test's leaky
cell at H = 50), trained by ``rnnjax.fit`` + ``rnnjax.make_loss`` with SGD on the same data and steps, ``--rhos``
values of rho scaling its W_hh: ``rnnjax.sweep(run, rho=rhos)`` (each device's runs vmapped together) and
``rnnjax.sweep(run, rho=rhos, batch_size=1)`` (each device's runs one after another in the same program)
against a loop of the jitted run.

Then the phase-diagram sweep: 64 rho x 4 seeds x lengths (20, 50, 200), tanh, one device vs every
device; and ``lyapunov_spectrum`` for H = 50, T = 10,000, all 50 exponents.

``--scale`` (the scale table alone): Experiment 2's training over rho x 4 seeds at each number of runs,
each size in a fresh process (peak resident memory is per process), keeping the histories alone
(``summary=rnnjax.sweeps.history_only``): the time per run of a call after a warm-up call that compiled the
same block program, and the process's peak resident memory, with the
default block (``rnnjax.sweeps.default_block``) and, up to ``--scale-before`` runs, as one block (every
run in one program: the sweep before blocks).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads OpenBLAS

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_numpy_rnn.py

from rnnjax.devices import use_host_devices  # noqa: E402


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    """(wall, process CPU) seconds since ``start``."""
    now = clock()
    return now[0] - start[0], now[1] - start[1]


def interleaved(contenders: dict, repeats: int) -> dict:
    """Call every contender once (its first call: compile + run), then ``repeats`` rounds of each in turn.

    Returns ``{name: {"first": (wall, cpu), "run": (median wall, median cpu), "compile": (wall, cpu)}}``,
    compile = first call minus the median run. Each contender must block until its work is done.
    """
    first, runs = {}, {name: [] for name in contenders}
    for name, fn in contenders.items():
        t = clock()
        fn()
        first[name] = since(t)
    for _ in range(repeats):
        for name, fn in contenders.items():
            t = clock()
            fn()
            runs[name].append(since(t))
    out = {}
    for name in contenders:
        med = tuple(statistics.median(r[i] for r in runs[name]) for i in (0, 1))
        out[name] = {"first": first[name], "run": med, "compile": tuple(max(f - m, 0.0) for f, m in
                                                                        zip(first[name], med, strict=True))}
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rhos", type=int, default=64)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--numpy-runs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--devices", type=int, default=None, help="host devices (default: one per core)")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    p.add_argument("--note", default=None, help="a note stored in the JSON (e.g. the machine's load)")
    p.add_argument("--scale", nargs="?", const="64,1024,4096,16384", default=None,
                   help="only the scale table: runs per sweep, comma-separated (default 64,1024,4096,16384)")
    p.add_argument("--scale-before", type=int, default=4096,
                   help="the one-block rows (before blocks) up to this many runs (default 4096)")
    p.add_argument("--scale-child", nargs=2, type=int, default=None, help=argparse.SUPPRESS)  # RUNS BLOCK (0: default)
    args = p.parse_args(argv)
    use_host_devices(args.devices)
    if args.scale_child is not None:
        return scale_child(*args.scale_child, steps=args.steps)
    if args.scale:  # the scale table alone
        load0 = os.getloadavg()
        out = {"scale": scale_rows([int(n) for n in args.scale.split(",")], args), "note": args.note,
               "load_average": [load0, os.getloadavg()]}
        if args.json is not None:
            args.json.write_text(json.dumps(out, indent=1))
        return out

    import jax
    import jax.numpy as jnp
    import numpy as np

    from rnnjax.analysis import lyapunov_spectrum
    from rnnjax.cells import init_rnn
    from rnnjax.data.text import fox_segments
    from rnnjax.sweeps import stability_sweep, train_sweep
    from rnnjax.train import train

    devices = jax.devices()
    load0 = os.getloadavg()[0]
    print(f"jax {jax.__version__}, {len(devices)} host device(s); {args.rhos} rho x {args.steps} steps, "
          f"median of {args.repeats} interleaved rounds; load average {load0:.2f}")
    data = fox_segments()
    xs, ys = jnp.asarray(data.inputs), jnp.asarray(data.targets)
    rhos = np.linspace(0.8, 1.3, args.rhos)
    kw = dict(loss="xent", num_steps=args.steps, learning_rate=1e-4, activation="relu")

    def sweep(devs, **extra):
        _, h = train_sweep(rhos, [0], xs, ys, hidden_size=50, devices=devs, **kw, **extra)
        return jax.block_until_ready(h)

    inits = [init_rnn(jax.random.PRNGKey(0), 27, 50, 27, rho=float(r)) for r in rhos]

    def loop():
        for p0 in inits:
            jax.block_until_ready(train(p0, xs, ys, **kw)[1])

    contenders = {"sweep 1 device": lambda: sweep(devices[:1]), f"sweep {len(devices)} devices": lambda: sweep(devices),
                  f"sweep {len(devices)} devices, batch_size=1": lambda: sweep(devices, batch_size=1), "loop": loop}
    numpy_train = None
    if args.numpy_runs > 0:
        from _numpy_rnn import numpy_train
        X, Y = np.asarray(data.inputs), np.asarray(data.targets)
        np_inits = [{k: np.asarray(v) for k, v in p0._asdict().items()} for p0 in inits[: args.numpy_runs]]
        contenders["numpy"] = lambda: [numpy_train(p0, X, Y, **kw) for p0 in np_inits]
    res = interleaved(contenders, args.repeats)
    if "numpy" in res:  # scaled from numpy_runs runs to all of them; NumPy compiles nothing
        scale = len(rhos) / args.numpy_runs
        res["numpy"] = {"first": None, "compile": None, "run": tuple(v * scale for v in res["numpy"]["run"])}

    # the norm: Lanczos (default) against the exact SVD, every finite step of every run
    h_lz, h_n = sweep(devices[:1]), sweep(devices)
    svd = interleaved({"sweep with exact SVD (1 device)": lambda: sweep(devices[:1], spec_norm="svd")}, 1)
    h_svd = sweep(devices[:1], spec_norm="svd")
    ok = np.asarray(h_svd.finite) & np.isfinite(np.asarray(h_svd.grad_whh_spec))
    exact, approx = np.asarray(h_svd.grad_whh_spec)[ok], np.asarray(h_lz.grad_whh_spec)[ok]
    rel = (approx - exact) / exact
    same = float(np.max(np.abs(np.asarray(h_lz.loss) - np.asarray(h_n.loss))))

    print(f"\nExperiment 2 sweep ({len(rhos)} rho x {args.steps} steps), seconds: run wall / CPU   "
          "[compile wall / CPU]")
    for name, r in {**res, **svd}.items():
        extra = (f"   [compile {r['compile'][0]:5.2f} / {r['compile'][1]:5.2f}]" if r["compile"] else
                 f"   (timed on {args.numpy_runs} runs, scaled x{len(rhos) / args.numpy_runs:g})")
        print(f"  {name:34s} {r['run'][0]:7.3f} / {r['run'][1]:7.3f}{extra}")
    one, many = res["sweep 1 device"]["run"], res[f"sweep {len(devices)} devices"]["run"]
    best = min(one[0], many[0])
    ratios = {"loop_over_sweep": res["loop"]["run"][0] / best, "devices_speedup": one[0] / many[0],
              "svd_sweep_over_sweep": svd["sweep with exact SVD (1 device)"]["run"][0] / best,
              "batch_size_1_over_sweep": res[f"sweep {len(devices)} devices, batch_size=1"]["run"][0] / many[0]}
    if "numpy" in res:
        ratios["numpy_over_sweep"] = res["numpy"]["run"][0] / best
    print(f"  ratios (wall): loop / sweep = {ratios['loop_over_sweep']:.2f}x (target >= 2x)"
          + (f", numpy / sweep = {ratios['numpy_over_sweep']:.1f}x (target >= 25x)" if "numpy" in res else "")
          + f"; 1 device / {len(devices)} devices = {ratios['devices_speedup']:.2f}x; exact-SVD sweep / sweep = "
          f"{ratios['svd_sweep_over_sweep']:.2f}x; batch_size=1 / vmapped ({len(devices)} devices) = "
          f"{ratios['batch_size_1_over_sweep']:.2f}x")
    print(f"  ||dL/dW_hh||_2 by Lanczos ({int(ok.sum())} finite steps): worst relative error vs the SVD "
          f"{np.max(np.abs(rel)):.1e} (below it by at most {max(-rel.min(), 0):.1e}, above by at most "
          f"{max(rel.max(), 0):.1e}); largest loss difference sharded vs 1 device {same:.1e}")

    # a user's own cell with a tuple carry, swept by rnnjax.sweep against a loop of its jitted run
    import optax
    from jax.tree_util import Partial

    import rnnjax

    def cell_init(key, D, H):
        k1, k2 = jax.random.split(key)
        return {"W_xh": jax.random.normal(k1, (D, H)) / np.sqrt(D), "W_hh": jax.random.normal(k2, (H, H)) / np.sqrt(H),
                "b_h": jnp.zeros(H)}

    def cell_step(p, carry, x):  # c_t = (c_{t-1} + tanh(x W_xh + h W_hh + b)) / 2, h_t = tanh(c_t)
        h, c = carry
        c = 0.5 * c + 0.5 * jnp.tanh(x @ p["W_xh"] + h @ p["W_hh"] + p["b_h"])
        return (jnp.tanh(c), c)

    cell = rnnjax.Cell(cell_init, lambda p: (jnp.zeros_like(p["b_h"]),) * 2, cell_step, lambda carry: carry[0])
    cell_loss, cell_opt = rnnjax.make_loss(cell, "xent"), optax.sgd(1e-4)

    def cell_run(rho, xs, ys):
        model = rnnjax.init_model(cell, jax.random.PRNGKey(0), 27, 50, 27)
        model = model._replace(cell=model.cell | {"W_hh": rho * model.cell["W_hh"]})
        return rnnjax.fit(cell_loss, model, (xs[:, None], ys[:, None]), cell_opt, num_steps=args.steps)[1].loss

    cell_swept = Partial(cell_run, xs=xs, ys=ys)
    cell_jit = jax.jit(cell_run)
    cell_res = interleaved({"sweep": lambda: rnnjax.sweep(cell_swept, rho=rhos),
                            "sweep, batch_size=1": lambda: rnnjax.sweep(cell_swept, rho=rhos, batch_size=1),
                            "loop": lambda: [cell_jit(jnp.float32(r), xs, ys).block_until_ready() for r in rhos]},
                           args.repeats)
    b = np.stack([np.asarray(cell_jit(jnp.float32(r), xs, ys)) for r in rhos])
    a, a1 = rnnjax.sweep(cell_swept, rho=rhos), rnnjax.sweep(cell_swept, rho=rhos, batch_size=1)
    cell_diff = float(np.nanmax(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))
    cell_same = bool(np.array_equal(a1, b, equal_nan=True))
    print(f"\nA user's own cell (tuple carry (h, c), H = 50, rnnjax.fit, {len(rhos)} rho x {args.steps} steps), "
          "seconds: run wall / CPU   [compile]")
    for name, r in cell_res.items():
        print(f"  {name:20s} {r['run'][0]:7.3f} / {r['run'][1]:7.3f}   [compile {r['compile'][0]:5.2f} / "
              f"{r['compile'][1]:5.2f}]")
    ratios["cell_loop_over_sweep"] = cell_res["loop"]["run"][0] / cell_res["sweep"]["run"][0]
    ratios["cell_loop_over_sweep_batch_size_1"] = cell_res["loop"]["run"][0] / cell_res["sweep, batch_size=1"]["run"][0]
    print(f"  ratio loop / sweep = {ratios['cell_loop_over_sweep']:.2f}x (whole batch vmapped), "
          f"{ratios['cell_loop_over_sweep_batch_size_1']:.2f}x with batch_size=1 (target >= 2x); largest relative "
          f"difference of the losses, sweep vs loop: {cell_diff:.1e}; batch_size=1 equals the loop bit for bit: "
          f"{cell_same}")

    # the phase-diagram sweep: shards over every device
    text_x, text_y = data.inputs.reshape(-1, 27)[:200], data.targets.reshape(-1)[:200]
    grid_rhos = np.linspace(0.5, 2.0, 64)

    def phase(devs):
        return stability_sweep(grid_rhos, [0, 1, 2, 3], text_x, text_y, hidden_size=50, output_size=27,
                               activation="tanh", lengths=[20, 50, 200], devices=devs)

    ph = interleaved({"1 device": lambda: phase(devices[:1]), f"{len(devices)} devices": lambda: phase(devices)},
                     args.repeats)
    a, b = phase(devices[:1]), phase(devices)
    diff = max(float(np.nanmax(np.abs(a[k] - b[k]))) for k in a)
    print("\nPhase-diagram sweep (64 rho x 4 seeds x lengths 20/50/200, tanh), seconds: run wall / CPU   [compile]")
    for name, r in ph.items():
        print(f"  {name:10s} {r['run'][0]:7.3f} / {r['run'][1]:7.3f}   [compile {r['compile'][0]:5.2f} / "
              f"{r['compile'][1]:5.2f}]")
    speedup = ph["1 device"]["run"][0] / ph[f"{len(devices)} devices"]["run"][0]
    print(f"  ratio 1 device / {len(devices)} devices = {speedup:.2f}x; "
          f"largest difference between the two: {diff:.1e} nats/step (float32 round-off)")

    # Lyapunov spectrum, H = 50, T = 10,000, all 50 exponents
    p = init_rnn(jax.random.PRNGKey(0), 27, 50, 27, rho=1.2)
    long_x = jax.nn.one_hot(jax.random.randint(jax.random.PRNGKey(1), (10_000,), 0, 27), 27)
    ly = interleaved({"QR every step": lambda: lyapunov_spectrum(p, long_x, activation="tanh").block_until_ready(),
                      "QR every 2 steps": lambda: lyapunov_spectrum(p, long_x, activation="tanh",
                                                                    reorth_every=2).block_until_ready()},
                     args.repeats)
    print("\nLyapunov spectrum, H = 50, T = 10,000, all 50 exponents (tanh, rho 1.2), seconds: run wall / CPU")
    for name, r in ly.items():
        print(f"  {name:16s} {r['run'][0]:6.3f} / {r['run'][1]:6.3f}   [compile {r['compile'][0]:5.2f} / "
              f"{r['compile'][1]:5.2f}]" + ("; target < 1 s" if name == "QR every step" else ""))
    load1 = os.getloadavg()[0]
    print(f"\nload average {load0:.2f} at the start, {load1:.2f} at the end (2 cores: above ~2 the walls are inflated)")
    out = {"jax": jax.__version__, "devices": len(devices), "rhos": len(rhos), "steps": args.steps,
           "repeats": args.repeats, "load_average": [load0, load1], "sweep": {**res, **svd}, "ratios": ratios,
           "lanczos_vs_svd": {"finite_steps": int(ok.sum()), "worst_relative_error": float(np.max(np.abs(rel))),
                              "most_below": float(max(-rel.min(), 0)), "most_above": float(max(rel.max(), 0))},
           "phase": ph, "lyapunov": ly, "user_cell": cell_res}
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))
    return out


def scale_child(runs: int, block: int, *, steps: int) -> dict:
    """One scale row, in this (fresh) process: Experiment 2's training over rho x 4 seeds, ``runs`` runs in
    blocks of ``block`` (0: the default); a warm-up call over one block compiles the program. Prints JSON."""
    import jax
    import numpy as np
    from jax.tree_util import Partial

    from rnnjax.data.text import fox_segments
    from rnnjax.sweeps import _Init, _TrainRun, history_only, print_progress, sweep

    data = fox_segments()  # train_sweep's run (Experiment 2's training), swept with the block given
    run = Partial(_TrainRun(_Init((27, 50, 27), "gaussian", None, None), "xent", steps, 1e-4, "sgd", None, "relu",
                            False), xs=data.inputs, targets=data.targets)
    seeds, R = np.arange(4), max(runs // 4, 1)
    rhos = np.linspace(0.8, 1.3, R)
    warm = rhos[: min(max((block or 128) // 4, 1), R)]  # as many runs as one block: compiles its program
    kw = dict(block=block or None, summary=history_only)  # the histories alone (what Experiment 2 keeps)
    sweep(run, rho=warm, seed=seeds, **kw)
    t = time.perf_counter()
    _, h = sweep(run, rho=rhos, seed=seeds, progress=print_progress, **kw)
    wall = time.perf_counter() - t
    out = {"runs": R * 4, "block": block or "default", "summary": "history_only",
           "per_run_ms": 1000 * wall / (R * 4), "wall_s": wall,
           "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
           "devices": len(jax.devices()), "finite": bool(np.asarray(h.finite).any())}
    print(json.dumps(out), flush=True)
    return out


def scale_rows(sizes: list[int], args) -> list[dict]:
    """The scale table: every size in a fresh process, with the default block and (up to --scale-before) as one
    block."""
    rows = []
    print("\nScale: Experiment 2's training over rho x 4 seeds, per run (a second call) and peak resident memory")
    for runs in sizes:
        for block in (0, runs) if runs <= args.scale_before else (0,):
            cmd = [sys.executable, __file__, "--steps", str(args.steps), "--scale-child", str(runs), str(block)]
            if args.devices:
                cmd += ["--devices", str(args.devices)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"  {runs} runs, block {block or 'default'}: failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            label = "one block (before)" if block else "default blocks"
            print(f"  {row['runs']:6d} runs, {label:18s} {row['per_run_ms']:7.2f} ms a run, peak "
                  f"{row['peak_rss_gb']:.2f} GB ({row['wall_s']:.1f} s)", flush=True)
    return rows


if __name__ == "__main__":
    main()
