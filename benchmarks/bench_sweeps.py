"""Speed of the rho sweeps (issue 4): one vmapped program vs a loop of jitted runs vs NumPy, sharding
over host devices, and the Lyapunov spectrum at H = 50, T = 10,000.

    python benchmarks/bench_sweeps.py [--rhos 64] [--steps 200] [--numpy-runs 4] [--repeats 3] [--devices N]

Experiment 2's sweep: ``--rhos`` values of rho in [0.8, 1.3] (all of them train finitely) x 1 seed x
``--steps`` SGD steps of the 50-unit ReLU RNN on the fox text (segments of 50, cross-entropy, lr 1e-4):

* ``vmapped``  -- :func:`rnnjax.sweeps.train_sweep` on one device: one jitted, vmapped program;
* ``sharded``  -- the same over every host device (``--devices``, default one per core, set before
  JAX starts). A program holding a CPU LAPACK call (the training records ||dL/dW_hh||_2 by SVD)
  is kept on one device -- jaxlib 0.10's batched LAPACK kernels deadlock when every core runs a
  device -- and the line says so;
* ``loop``     -- a Python loop of jitted single :func:`rnnjax.train` runs (compiled once);
* ``numpy``    -- ``benchmarks/_numpy_rnn.py``'s hand BPTT + SGD, timed on ``--numpy-runs`` rhos and
  scaled linearly to all of them.

Then the phase-diagram sweep (LAPACK-free, so it really shards): 64 rho x 4 seeds x lengths
(20, 50, 200), tanh, one device vs every device; and ``lyapunov_spectrum`` for H = 50, T = 10,000,
all 50 exponents. Medians of ``--repeats`` runs after a compile run; all ratios come from this one
process, so they hold on a busy machine where absolute times do not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_numpy_rnn.py

from rnnjax.devices import use_host_devices  # noqa: E402


def timed(fn, repeats: int):
    """(first-call seconds, median of ``repeats`` later calls); ``fn`` must block until done."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return first, statistics.median(runs)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rhos", type=int, default=64)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--numpy-runs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--devices", type=int, default=None, help="host devices (default: one per core)")
    args = p.parse_args(argv)
    use_host_devices(args.devices)

    import jax
    import jax.numpy as jnp
    import numpy as np

    from rnnjax.analysis import lyapunov_spectrum
    from rnnjax.cells import init_rnn
    from rnnjax.data.text import fox_segments
    from rnnjax.sweeps import sharded_vmap, stability_sweep, train_sweep
    from rnnjax.train import train

    devices = jax.devices()
    print(f"jax {jax.__version__}, {len(devices)} host device(s); {args.rhos} rho x {args.steps} steps, "
          f"median of {args.repeats}")
    data = fox_segments()
    xs, ys = jnp.asarray(data.inputs), jnp.asarray(data.targets)
    rhos = np.linspace(0.8, 1.3, args.rhos)
    kw = dict(loss="xent", num_steps=args.steps, learning_rate=1e-4, activation="relu")
    res = {}

    def sweep(devs):
        _, h = train_sweep(rhos, [0], xs, ys, hidden_size=50, devices=devs, **kw)
        h.grad_whh_spec.block_until_ready()
        return h

    res["vmapped"] = timed(lambda: sweep(devices[:1]), args.repeats)
    res["sharded"] = timed(lambda: sweep(devices), args.repeats)
    h_v, h_s = sweep(devices[:1]), sweep(devices)
    same = float(np.max(np.abs(np.asarray(h_v.loss) - np.asarray(h_s.loss))))

    from rnnjax.sweeps import _Init, _TrainRun  # the per-run program, to report how many devices it gets
    one = _TrainRun(_Init((27, 50, 27), "gaussian", None, None), "xent", args.steps, 1e-4, "sgd", None, "relu", False)
    used = sharded_vmap(one, devices=devices, shared=2).devices(jnp.asarray(rhos, jnp.float32),
                                                                jnp.zeros(len(rhos), jnp.int32), xs, ys)

    inits = [init_rnn(jax.random.PRNGKey(0), 27, 50, 27, rho=float(r)) for r in rhos]

    def loop():
        for p0 in inits:
            train(p0, xs, ys, **kw)[1].grad_whh_spec.block_until_ready()

    res["loop"] = timed(loop, max(1, args.repeats - 1))

    try:
        from _numpy_rnn import numpy_train
    except ImportError:  # pragma: no cover - the reference lives beside this file
        numpy_train = None
    if numpy_train is not None and args.numpy_runs > 0:
        X, Y = np.asarray(data.inputs), np.asarray(data.targets)
        t = time.perf_counter()
        for p0 in inits[: args.numpy_runs]:
            numpy_train({k: np.asarray(v) for k, v in p0._asdict().items()}, X, Y, loss="xent", num_steps=args.steps,
                        learning_rate=1e-4, activation="relu")
        per_run = (time.perf_counter() - t) / args.numpy_runs
        res["numpy"] = (None, per_run * len(rhos))

    print(f"\nExperiment 2 sweep ({len(rhos)} rho x {args.steps} steps):")
    for name, (first, med) in res.items():
        extra = "" if first is None else f"   (first call {first:6.2f} s: compile + run)"
        if name == "numpy":
            extra = f"   (timed on {args.numpy_runs} runs, scaled x{len(rhos) / args.numpy_runs:g})"
        if name == "sharded":
            extra += f"; ran on {used} of {len(devices)} device(s)" + (
                " -- the program holds an SVD (CPU LAPACK), kept on one device" if used < len(devices) else "")
        print(f"  {name:8s} {med:8.3f} s{extra}")
    best = min(res["vmapped"][1], res["sharded"][1])
    print(f"  ratios: loop / sweep = {res['loop'][1] / best:.2f}x (target >= 2x)"
          + (f", numpy / sweep = {res['numpy'][1] / best:.1f}x (target >= 25x)" if "numpy" in res else "")
          + f"; largest loss difference sharded vs vmapped: {same:.1e}")

    # the phase-diagram sweep: LAPACK-free, so it shards over every device
    text_x, text_y = data.inputs.reshape(-1, 27)[:200], data.targets.reshape(-1)[:200]
    grid_rhos = np.linspace(0.5, 2.0, 64)

    def phase(devs):
        return stability_sweep(grid_rhos, [0, 1, 2, 3], text_x, text_y, hidden_size=50, output_size=27,
                               activation="tanh", lengths=[20, 50, 200], devices=devs)

    ph1, phn = timed(lambda: phase(devices[:1]), args.repeats), timed(lambda: phase(devices), args.repeats)
    a, b = phase(devices[:1]), phase(devices)
    diff = max(float(np.nanmax(np.abs(a[k] - b[k]))) for k in a)
    print(f"\nPhase-diagram sweep (64 rho x 4 seeds x lengths 20/50/200, tanh):\n"
          f"  1 device  {ph1[1]:8.3f} s   (first call {ph1[0]:.2f} s)\n"
          f"  {len(devices)} devices {phn[1]:8.3f} s   (first call {phn[0]:.2f} s)\n"
          f"  ratio 1 device / {len(devices)} devices = {ph1[1] / phn[1]:.2f}x; largest difference between the two: "
          f"{diff:.1e} nats/step (float32 round-off)")

    # Lyapunov spectrum, H = 50, T = 10,000, all 50 exponents
    p = init_rnn(jax.random.PRNGKey(0), 27, 50, 27, rho=1.2)
    long_x = jax.nn.one_hot(jax.random.randint(jax.random.PRNGKey(1), (10_000,), 0, 27), 27)
    ly = timed(lambda: lyapunov_spectrum(p, long_x, activation="tanh").block_until_ready(), args.repeats)
    ly2 = timed(lambda: lyapunov_spectrum(p, long_x, activation="tanh", reorth_every=2).block_until_ready(),
                args.repeats)
    print(f"\nLyapunov spectrum, H = 50, T = 10,000, all 50 exponents (tanh, rho 1.2):\n"
          f"  QR every step     {ly[1]:6.3f} s after compile (first call {ly[0]:.2f} s); target < 1 s\n"
          f"  QR every 2 steps  {ly2[1]:6.3f} s after compile")
    return {"sweep": res, "phase": (ph1, phn), "lyapunov": (ly, ly2)}


if __name__ == "__main__":
    main()
