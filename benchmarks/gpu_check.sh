#!/usr/bin/env bash
# One prepared GPU check (run on a CUDA machine with jax[cuda] installed, from the repo root):
# the float64/float32 correctness tests on the GPU, then the speed benchmarks -- core (which method="auto"
# picks there, and against what), the rho sweeps, and the main job with its per-experiment times, cold
# (nothing cached) and then warm (compiled programs loaded from the persistent cache). Logs go to ${OUT:-.}.
set -u
export PYTHONPATH=src:. PYTHONUNBUFFERED=1 MPLBACKEND=Agg
out=${OUT:-.}
python3 -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | tee "$out/gpu_env.log"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_bptt.py tests/test_train.py tests/test_cells.py \
  tests/test_analysis.py 2>&1 | tail -25 | tee "$out/gpu_tests.log"
timeout 120 python3 benchmarks/bench_core.py 2>&1 | tee "$out/gpu_bench_core.log"
timeout 150 python3 benchmarks/bench_sweeps.py --numpy-runs 1 --devices 1 2>&1 | tee "$out/gpu_bench_sweeps.log"
export RNNJAX_CACHE="$out/cache"
for run in cold warm; do
  /usr/bin/time -v timeout 300 python3 -m experiments.reproduce --out "$out/runs" 2>&1 \
    | grep -E "done in|All done|Elapsed|Maximum resident" | tee "$out/gpu_main_job_$run.log"
done
