"""Experiment 1's speed: the default run's wall time by stage, and its training against a NumPy hand BPTT.

    python benchmarks/bench_stock.py [--repeats 3] [--epochs 300] [--no-process]

1. Runs ``python -m experiments.stock_forecast`` (the default, report's run on the embedded
   data) as a fresh process and reports its wall time and the stages the experiment timed itself
   (imports, data, compile, training, prediction, writing, figures). Target: < 5 s in all.
2. In this one process, times the same training -- 6,366 windows of 20 closes, RNN H=16 tanh,
   ``mse_last``, full-batch SGD lr 0.01, 300 epochs, clipping at 5 -- compiled once with rnnjax
   (the experiment's own ``fit_rnn_seeds``, median of ``--repeats`` runs after compilation) and as
   a plain NumPy loop with a hand-written BPTT (``benchmarks/_numpy_rnn.py``) from the same initial
   weights, checks that both reach the same loss, and prints the ratio. Target: <= 0.55x NumPy.

Timings are noisy on a shared machine: compare the ratio, measured here in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

TARGET_PROCESS_S = 5.0
TARGET_RATIO = 0.55


def time_process() -> dict:
    """Wall time of the default experiment as a fresh process, and its own stage timings."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "experiments.stock_forecast", "--out", tmp], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, env=os.environ | {"MPLBACKEND": "Agg"})
        wall = time.perf_counter() - t0
        metrics = json.loads((Path(tmp) / "metrics.json").read_text())
    return {"wall": wall, **metrics["timings_s"], "rmse": metrics["rmse"]}


def time_training(epochs: int, repeats: int) -> dict:
    """Median seconds of the experiment's training in rnnjax (compiled) and in plain NumPy, same init."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from _numpy_rnn import numpy_train

    from rnnjax import forecast, init_rnn
    from rnnjax.data.prices import load_prices, make_forecast_data

    data = make_forecast_data(load_prices().to_numpy())
    xs, ys = jnp.asarray(data.x_train)[None], jnp.asarray(data.y_train)[None]  # (1, 6366, 20, 1): full batch
    keys = jax.random.fold_in(jax.random.PRNGKey(0), 0)[None]  # the experiment's seed 0
    opts = dict(hidden_size=16, loss="mse_last", num_steps=epochs, optimizer="sgd", clip_norm=5.0,
                activation="tanh", method="bptt")
    lr = jnp.float32(0.01)
    t0 = time.perf_counter()
    fit = forecast.fit_rnn_seeds.lower(keys, xs, ys, lr, **opts).compile()
    compile_s = time.perf_counter() - t0
    jax_times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        params, hist = jax.block_until_ready(fit(keys, xs, ys, lr))
        jax_times.append(time.perf_counter() - t0)

    init = jax.tree.map(np.asarray, init_rnn(keys[0], 1, 16, 1))
    np_times = []
    for _ in range(max(1, repeats // 2)):
        t0 = time.perf_counter()
        _, np_hist = numpy_train(init, np.asarray(xs), np.asarray(ys), loss="mse_last", num_steps=epochs,
                                 learning_rate=0.01, clip_norm=5.0)
        np_times.append(time.perf_counter() - t0)
    np_losses = np.asarray(np_hist["loss"] if isinstance(np_hist, dict) else np_hist)  # per-epoch loss
    jax_losses = np.asarray(hist.loss[0])
    agree = float(np.max(np.abs(jax_losses - np_losses) / np.abs(np_losses)))
    return {"compile": compile_s, "jax": statistics.median(jax_times), "numpy": statistics.median(np_times),
            "jax_all": jax_times, "numpy_all": np_times, "loss_rel_diff": agree,
            "final_loss": float(jax_losses[-1]), "windows": int(xs.shape[1])}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="timed runs of the compiled training (median)")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--no-process", action="store_true", help="skip the whole-experiment process timing")
    p.add_argument("--blas-threads", type=int, default=None,
                   help="threads for NumPy's BLAS (default: its own choice); must be set before NumPy loads, so "
                        "this works only when bench_stock.py is the program run")
    args = p.parse_args(argv)
    if args.blas_threads is not None:
        if "numpy" in sys.modules:
            raise SystemExit("--blas-threads must be given before NumPy is imported (run the script directly)")
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} at start; NumPy BLAS threads: "
          f"{args.blas_threads or 'default'}")
    result = {"load_start": load[0]}
    if not args.no_process:
        proc = time_process()
        result["process"] = proc
        stages = ", ".join(f"{k} {proc[k]:.2f}" for k in ("imports", "load", "compile", "train", "predict", "write",
                                                          "figures"))
        print(f"default experiment as a process: {proc['wall']:.2f} s wall (target < {TARGET_PROCESS_S} s: "
              f"{'met' if proc['wall'] < TARGET_PROCESS_S else 'NOT met'}); stages (s): {stages}; "
              f"in-process total {proc['total']:.2f} s")
    tr = time_training(args.epochs, args.repeats)
    result["training"] = tr
    ratio = tr["jax"] / tr["numpy"]
    result["ratio"] = ratio
    print(f"training, {tr['windows']} windows x {args.epochs} epochs, full batch, one process:")
    print(f"  rnnjax (compiled, median of {args.repeats}): {tr['jax']:.3f} s   "
          f"[runs {', '.join(f'{t:.3f}' for t in tr['jax_all'])}; compile {tr['compile']:.2f} s]")
    print(f"  NumPy hand BPTT loop:                  {tr['numpy']:.3f} s   "
          f"[runs {', '.join(f'{t:.3f}' for t in tr['numpy_all'])}]")
    print(f"  ratio rnnjax / NumPy = {ratio:.2f}x (target <= {TARGET_RATIO}x: "
          f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}); per-epoch losses agree to "
          f"{tr['loss_rel_diff']:.1e} relative; final loss {tr['final_loss']:.3e}")
    result["load_end"] = os.getloadavg()[0]
    print(f"load average {result['load_end']:.2f} at the end (a loaded machine slows both, NumPy's threaded BLAS most)")
    return result


if __name__ == "__main__":
    main()
