"""A sweep over a two-process JAX job (jax.distributed on 127.0.0.1, gloo CPU collectives, 2 host devices
each: a global mesh of 4) equals the same sweep in one process; so does a sweep whose blocks are dealt to
the two processes, each writing its own into one store, after the job was killed part way and started
again; init_distributed's argument checks."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import free_port, job_env

from rnnjax.devices import init_distributed

SWEEP = textwrap.dedent("""
    import jax, jax.numpy as jnp
    import numpy as np
    from rnnjax.sweeps import lag_spectra_sweep, load_sweep, sweep, train_sweep

    def grid_run(rho, seed):  # a cheap run with a history: x_{t+1} = tanh(rho W x_t)
        W = jax.random.normal(jax.random.PRNGKey(seed), (3, 3))
        return jax.lax.scan(lambda x, _: (jnp.tanh(rho * W @ x),) * 2, jnp.ones(3), None, length=4)[1]

    def store(out=None, progress=None):  # 5 blocks of 2 runs, dealt 3 + 2 to two processes, each writing its own
        got = sweep(grid_run, block=2, out=out, progress=progress, rho=np.linspace(0.5, 2.0, 5), seed=np.arange(2))
        return {"store": got} if out is None else {"store": got, "store_loaded": load_sweep(out).results["result"]}

    def sweeps():
        rng = np.random.default_rng(0)
        codes, ys = rng.integers(0, 4, size=(3, 8)), rng.integers(0, 4, size=(3, 8))
        xs = np.eye(4, dtype=np.float32)[codes]
        rhos, seeds = [0.5, 0.9, 1.3, 2.0, 60.0], [0, 1]  # 10 runs: padded to 12 over 4 devices
        _, h = train_sweep(rhos, seeds, xs, ys, hidden_size=6, loss="xent", num_steps=4, learning_rate=0.05,
                           activation="relu", fast_compile=True)
        lag = lag_spectra_sweep(rhos[:2], seeds, xs, ys, hidden_size=6, output_size=4, activation="tanh",
                                fast_compile=True)  # holds an SVD: one device per process
        out = {f"train_{k}": np.asarray(v) for k, v in h._asdict().items()}
        out.update({f"lag_{k}": v for k, v in lag.items()})
        return out
""")

WORKER = SWEEP + textwrap.dedent("""
    import sys
    from rnnjax.devices import init_distributed, use_host_devices
    import os
    port, pid, out, folder, kill = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "kill"
    use_host_devices(2)
    assert init_distributed(f"127.0.0.1:{port}", 2, pid, timeout_s=60) == 2
    import jax
    assert len(jax.devices()) == 4 and len(jax.local_devices()) == 2, jax.devices()
    if kill:  # the job is killed: process 1 dies after its first block (process 0 is killed by the test)
        store(folder, progress=lambda done, total, s, left: os._exit(3) if pid == 1 and done == 1 else None)
    np.savez(out, **sweeps(), **store(folder))  # every process holds every result
    sys.stdout.write(f"WORKER_OK {pid}\\n")  # one write: with PYTHONUNBUFFERED print() writes in pieces, which gloo's
    # own lines to this stdout can split
    sys.stdout.flush()
""")


def _job(tmp_path, mode: str) -> list[subprocess.Popen]:
    port = free_port()
    env = job_env()  # the suite's compile flags: less compiling
    return [subprocess.Popen([sys.executable, "-c", WORKER, str(port), str(i), str(tmp_path / f"p{i}.npz"),
                              str(tmp_path / "store"), mode],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]


def _stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_two_process_sweep_equals_the_one_process_sweep(tmp_path):
    killed = _job(tmp_path, "kill")  # a job killed part way: process 1 dies after its first block, then process 0
    try:
        assert killed[1].wait(timeout=240) == 3, killed[1].communicate()[1][-3000:]
    finally:
        _stop(killed)
    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "store").glob("block_*.npz")}
    assert "block_000001.npz" in written and len(written) < 5  # process 1's first block; not all of them

    procs = _job(tmp_path, "run")  # the job started again: it finishes the store
    try:
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        _stop(procs)
    for i, (p, (out, err)) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 0 and f"WORKER_OK {i}" in out, err[-3000:]
    assert all((tmp_path / "store" / name).stat().st_mtime_ns == t for name, t in written.items())  # skipped

    namespace = {}
    exec(SWEEP, namespace)  # the same sweeps here, in one process on one device
    single = namespace["sweeps"]() | namespace["store"]()
    single["store_loaded"] = single["store"]
    assert len(list((tmp_path / "store").glob("block_*.npz"))) == 5
    assert not single["train_finite"][-1].all()  # rho = 60 blows up: a per-run difference the gather must keep
    for i in range(2):
        got = np.load(tmp_path / f"p{i}.npz")
        assert sorted(got.files) == sorted(single)
        for k, v in single.items():  # the dealt store: 1 run per device there, 2 here (XLA vectorises them apart)
            tol = dict(rtol=1e-5, atol=1e-6) if k.startswith("store") else dict(rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(got[k], v, **tol, err_msg=f"process {i}: {k}")
        np.testing.assert_array_equal(got["store"], got["store_loaded"])  # what it returned is what it stored


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(num_processes="two"), r"num_processes must be an integer \(argument or \$JAX_NUM_PROCESSES\), got 'two'"),
    (dict(num_processes=0), r"num_processes must be >= 1, got 0"),
    (dict(num_processes=2, process_id=2), r"process_id must lie in \[0, 2\), got 2"),
])
def test_init_distributed_rejects_bad_values(kwargs, message, monkeypatch):
    for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ValueError, match=message):
        init_distributed("127.0.0.1:1", **kwargs)


def test_init_distributed_without_a_job_does_nothing(monkeypatch):
    for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(k, raising=False)
    assert init_distributed() == 1
