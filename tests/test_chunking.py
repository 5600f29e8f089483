"""Long trainings run in pieces of about a second of one compiled program, invisible in the results."""

import numpy as np

from experiments import remedies as exp


def test_piece_size_divides_the_chunk():
    assert [exp.piece_size(n) for n in (1000, 60, 7, 1, 37)] == [50, 30, 7, 1, 37]
    assert all(n % exp.piece_size(n) == 0 and exp.piece_size(n) <= exp.PIECE for n in range(1, 300))


def test_the_adding_problem_trained_in_pieces_equals_one_call_per_chunk(monkeypatch):
    """Pieces of 5 updates give exactly (bit for bit) the curves and parameters of one call per chunk of 10, and
    report their progress at every piece."""
    import jax

    cfg = exp.build_parser().parse_args(["--adding-steps", "20", "--batch", "4", "--hidden", "4", "--adding-T", "10"])
    monkeypatch.setattr(exp, "CHUNK", 10)
    keys = np.array([[0, 2], [0, 3]], np.uint32)  # PRNGKey(2) and PRNGKey(3), raw, in NumPy: no eager programs
    members = (("rnn_tanh", 2),)
    monkeypatch.setattr(exp, "PIECE", 10)
    whole = exp.train_until_solved(cfg, "rnn", "tanh", members, *keys)
    monkeypatch.setattr(exp, "PIECE", 5)
    seen = []
    pieces = exp.train_until_solved(cfg, "rnn", "tanh", members, *keys, progress=seen.append)
    assert seen == [5, 10, 15, 20]
    for a, b in zip(jax.tree.leaves(whole[1]), jax.tree.leaves(pieces[1]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(whole[2:], pieces[2:], strict=True):
        np.testing.assert_array_equal(a, b)
    assert whole[2].shape == (2, 20) and not np.allclose(whole[2][:, 0], whole[2][:, -1])  # it trains


def test_flossing_pieces_keep_the_monitors_schedule():
    from types import SimpleNamespace

    from experiments.flossing import PIECE, piece_steps

    cfg = lambda steps, m: SimpleNamespace(steps=steps, monitor_every=m)
    assert PIECE == 10
    cases = ((400, 10), (30, 10), (400, 3), (25, 10), (7, 1))  # (steps, monitor interval)
    assert [piece_steps(cfg(s, m)) for s, m in cases] == [10, 10, 400, 25, 7]  # 400 and 25: no such piece, one call
    for steps in range(1, 120):
        for m in (1, 3, 10):
            k = piece_steps(cfg(steps, m))
            assert steps % k == 0 and (k % m == 0 or k == steps)  # pieces tile the run; records on the same steps
