"""Matplotlib figures: the paper's Figure 2 panels and the error plots of :mod:`fireflow_edu.analysis`.

Each helper draws into a given ``ax`` (or makes one) and returns it, so notebooks
can arrange panels freely.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from .analysis import fit_slope

SOURCE_COLOR, TARGET_COLOR, GENERATED_COLOR = "tab:orange", "tab:green", "tab:blue"
# One look per solver in every curve plot. Midpoint and RF-Solver are the same method (their curves coincide), so
# midpoint is a wide translucent band and RF-Solver a thin dashed line with crosses drawn on top of it.
METHOD_STYLES = {
    "euler": dict(color="tab:blue", marker="o", linestyle="-"),
    "midpoint": dict(color="tab:orange", marker="o", linestyle="-", linewidth=6, alpha=0.35, markersize=10),
    "rf_solver": dict(color="black", marker="x", linestyle="--", linewidth=1.2, markersize=7),
    "fireflow": dict(color="tab:red", marker="^", linestyle="-"),
}


def _axes(ax):
    return ax if ax is not None else plt.subplots(figsize=(4.5, 4))[1]


def method_style(method: str) -> dict:
    """Plot keywords of ``method``'s curve (:data:`METHOD_STYLES`; a method not listed gets matplotlib's next)."""
    return dict(METHOD_STYLES.get(method, {"marker": "o", "linestyle": "-"}))


def legend_below(ax, ncol: int = 2):
    """The legend under the axes (below the x label), where it hides no point or path."""
    return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=ncol, fontsize=9, markerscale=3,
                     frameon=False)


def plot_transport(trajectory: torch.Tensor, target_sample: torch.Tensor, title: str = "",
                   num_paths: int = 30, ax=None):
    """One Figure-2 panel: source (orange), target (green), generated (blue), ``num_paths`` paths.

    ``trajectory`` is [N + 1, n, 2], starting from the source samples at t = 1.
    """
    ax = _axes(ax)
    trajectory = trajectory.detach().cpu()
    ax.scatter(*target_sample.cpu().T, s=3, alpha=0.3, color=TARGET_COLOR, label=r"target $\pi_1$")
    ax.scatter(*trajectory[0].T, s=3, alpha=0.3, color=SOURCE_COLOR, label=r"source $\pi_0$")
    ax.scatter(*trajectory[-1].T, s=3, alpha=0.4, color=GENERATED_COLOR, label="generated")
    step = max(1, trajectory.shape[1] // num_paths)
    for k, path in enumerate(trajectory[:, ::step].permute(1, 0, 2)[:num_paths]):
        ax.plot(*path.T, color="black", linewidth=0.6, alpha=0.6, label="solver paths" if k == 0 else None)
    ax.set_title(title)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal")
    legend_below(ax)  # inside, any corner or the ring's middle lies on some path
    return ax


def plot_figure2(comparison: dict, axes=None):
    """The paper's Figure 2 from :func:`fireflow_edu.toy.experiment.compare_solvers`: one panel per method."""
    methods = list(comparison["trajectories"])
    if axes is None:  # two panels a row: each stays large enough to read at a notebook's width
        rows = -(-len(methods) // 2)
        _, grid = plt.subplots(rows, 2, figsize=(9, 5.2 * rows), squeeze=False)
        for spare in grid.flat[len(methods):]:
            spare.set_visible(False)
        axes = grid.flat[:len(methods)]
    for ax, method in zip(axes, methods):
        row = comparison["methods"][method]
        title = (f"{method}: {row['steps']} steps, NFE={row['nfe']}\n"
                 f"W2 to target {row['w2_to_target']:.2f} ± {row['w2_std']:.2f}")
        plot_transport(comparison["trajectories"][method], comparison["target_sample"], title, ax=ax)
    return axes


def plot_error_curves(results: dict, x_key: str = "dt", y_key: str = "error", ax=None):
    """Log-log error curves from :func:`~fireflow_edu.analysis.error_vs_dt` (or round-trip results).

    ``x_key`` is "dt", "steps" or "nfe". The legend shows each fitted slope.
    """
    ax = _axes(ax)
    for method, rows in results["methods"].items():
        slope = fit_slope(rows[x_key], rows[y_key])
        ax.loglog(rows[x_key], rows[y_key], label=f"{method} (slope {slope:.2f})", **method_style(method))
    if x_key in ("nfe", "steps"):  # counts: plain numbers at powers of 2, not 4 x 10^0
        ax.xaxis.set_major_locator(LogLocator(base=2))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel({"dt": r"$\Delta t$", "nfe": "NFE", "steps": "steps"}.get(x_key, x_key))
    ax.set_ylabel({"rmse": "RMSE", "median": "median point's error", "error": "global error"}.get(y_key, y_key))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    return ax


def plot_reuse_error(reuse: dict, title: str = "", ax=None):
    """The paper's Figure 3 as the ratio that decides the order: gap / |h| = ||v_hat - v|| / |h| against t.

    FireFlow stays second order when the gap is O(|h|), i.e. when this ratio stays bounded as the steps get finer:
    draw passes of several step counts N on one ``ax`` and their curves should lie on top of each other. The
    y axis is logarithmic, so a spike near one end of the pass stays readable beside the flat part.
    """
    ax = _axes(ax)
    steps = len(reuse["dt"]) + 1
    ax.semilogy(reuse["t"], reuse["ratio"], "o-", markersize=4, label=f"N = {steps} steps")
    ax.set_xlabel("t at the start of the step that reuses")
    ax.set_ylabel(r"$\|\hat v - v\|\ /\ |\Delta t|$")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    return ax
