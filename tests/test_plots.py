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
        plot_grad_norm_history(path=path, curves=
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
    fig = plot_grad_norm_history(curves)
    assert isinstance(fig, Figure) and not list(tmp_path.iterdir())  # nothing written without a path
    mine = Figure()
    ax = mine.add_subplot(1, 2, 2)
    assert plot_grad_norm_history(curves, ax=ax, path=tmp_path / "f.png") is mine  # the caller's figure, its panel
    assert ax.get_yscale() == "log" and ax.get_lines() and (tmp_path / "f.png").stat().st_size > 5_000


def test_the_analysis_plots_take_the_analysis_functions_arrays(tmp_path):
    """Each one-panel plot takes arrays as rnnjax.analysis returns them, draws into a caller's axes, uses a log
    scale where the quantity is exponential, and writes a PNG only given a path."""
    import numpy as np
    from matplotlib.figure import Figure

    from rnnjax.plots.analysis import plot_growth_grid, plot_lag_profile, plot_lyapunov_spectra, plot_product_spectra

    k = np.arange(20)
    mine = Figure()
    axes = mine.subplots(1, 4)
    assert plot_lag_profile(k, 0.9 ** k, bound=1.1 ** k, lyapunov=np.log(0.9), ax=axes[0]) is mine
    assert axes[0].get_yscale() == "log" and len(axes[0].get_lines()) == 3
    plot_product_spectra(k + 1, np.log(0.9) * np.outer(k + 1, [1.0, 2.0, 3.0]), ax=axes[1])
    assert len(axes[1].get_lines()) == 3  # one line per singular value
    plot_lyapunov_spectra({"rho = 0.9": [-0.1, -0.3], "rho = 1.2": [0.05, -0.2]}, ax=axes[2])
    assert [line.get_label() for line in axes[2].get_lines()][:2] == ["rho = 0.9", "rho = 1.2"]
    rhos, lengths = np.linspace(0.8, 1.3, 6), [50, 200]
    grid = np.log(rhos)[:, None] * np.ones(2)
    grid[0, 1] = np.nan  # a run that did not stay finite: left blank
    plot_growth_grid(rhos, lengths, grid, ax=axes[3])
    image = axes[3].get_images()[0]
    assert image.norm.vcenter == 0.0 and image.get_array().shape == (6, 2)  # the colour's middle is the edge of chaos
    assert not list(tmp_path.iterdir())
    plot_lag_profile(k, 0.9 ** k, path=tmp_path / "lag.png")
    assert (tmp_path / "lag.png").stat().st_size > 5_000
