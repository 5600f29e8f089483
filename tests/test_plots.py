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
        from pathlib import Path
        path = Path({str(tmp_path / "fig.png")!r})
        plot_grad_norm_history(path,
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


def test_plots_return_figures_draw_into_a_callers_axes_and_save_only_with_a_path(tmp_path):
    import numpy as np
    from matplotlib.figure import Figure

    from rnnjax.plots.gradients import plot_grad_norm_history

    curves = {0.9: {"steps": np.arange(4), "median": np.ones(4), "low": np.ones(4), "high": np.ones(4), "seeds": 2}}
    fig = plot_grad_norm_history(None, curves)
    assert isinstance(fig, Figure) and not list(tmp_path.iterdir())  # nothing written without a path
    mine = Figure()
    ax = mine.add_subplot(1, 2, 2)
    assert plot_grad_norm_history(tmp_path / "f.png", curves, ax=ax) is mine  # the caller's figure, its panel
    assert ax.get_yscale() == "log" and ax.get_lines() and (tmp_path / "f.png").stat().st_size > 5_000
