"""The figures respect the user's matplotlib: no backend switch, no pyplot, the project style scoped."""

import subprocess
import sys
import textwrap


def test_importing_and_plotting_leaves_the_users_matplotlib_alone(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import matplotlib
        matplotlib.use("pdf")  # the user's choice, e.g. a notebook's backend
        import numpy as np
        from rnnjax.plots.gradients import plot_grad_norm_history
        path = plot_grad_norm_history({str(tmp_path / "fig.png")!r},
                                      {{0.9: {{"steps": np.arange(3), "median": np.ones(3), "low": np.ones(3),
                                              "high": np.ones(3), "seeds": 2}}}})
        assert matplotlib.get_backend() == "pdf", matplotlib.get_backend()
        assert "matplotlib.pyplot" not in sys.modules, "the library imported pyplot"
        assert matplotlib.rcParams["legend.frameon"] is True  # the project style did not leak
        print(path.stat().st_size)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) > 5_000  # a real PNG was written
