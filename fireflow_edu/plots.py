"""Matplotlib figures: the paper's Figure 2 panels and the error plots of :mod:`fireflow_edu.analysis`.

Each helper draws into a given ``ax`` (or makes one) and returns it, so notebooks
can arrange panels freely.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .analysis import fit_slope

SOURCE_COLOR, TARGET_COLOR, GENERATED_COLOR = "tab:orange", "tab:green", "tab:blue"


def _axes(ax):
    return ax if ax is not None else plt.subplots(figsize=(4.5, 4))[1]


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
    ax.legend(loc="center", fontsize=9, markerscale=3, framealpha=0.85)  # the middle of the mode ring is empty
    return ax


def plot_figure2(comparison: dict, axes=None):
    """The paper's Figure 2 from :func:`fireflow_edu.toy.experiment.compare_solvers`: one panel per method."""
    methods = list(comparison["trajectories"])
    if axes is None:  # two panels a row: each stays large enough to read at a notebook's width
        rows = -(-len(methods) // 2)
        _, grid = plt.subplots(rows, 2, figsize=(9, 4.5 * rows), squeeze=False)
        for spare in grid.flat[len(methods):]:
            spare.set_visible(False)
        axes = grid.flat[:len(methods)]
    for ax, method in zip(axes, methods):
        row = comparison["methods"][method]
        title = f"{method}: {row['steps']} steps, NFE={row['nfe']}\nW2 to target {row['w2_to_target']:.2f}"
        plot_transport(comparison["trajectories"][method], comparison["target_sample"], title, ax=ax)
    return axes


def plot_error_curves(results: dict, x_key: str = "dt", y_key: str = "error", ax=None):
    """Log-log error curves from :func:`~fireflow_edu.analysis.error_vs_dt` (or round-trip results).

    ``x_key`` is "dt", "steps" or "nfe". The legend shows each fitted slope.
    """
    ax = _axes(ax)
    for method, rows in results["methods"].items():
        slope = fit_slope(rows[x_key], rows[y_key])
        ax.loglog(rows[x_key], rows[y_key], "o-", label=f"{method} (slope {slope:.2f})")
    ax.set_xlabel({"dt": r"$\Delta t$", "nfe": "NFE", "steps": "steps"}.get(x_key, x_key))
    ax.set_ylabel(y_key.upper() if y_key == "rmse" else f"global {y_key}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    return ax


def plot_reuse_error(reuse: dict, title: str = "", ax=None):
    """The paper's Figure 3: ||v_hat - v|| at each step beside the step size."""
    ax = _axes(ax)
    ax.plot(reuse["step"], reuse["gap"], "o-", label=r"$\|\hat v - v\|$ (RMS)")
    ax.plot(reuse["step"], reuse["dt"], "s--", label=r"$\Delta t$")
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend(fontsize=9)
    return ax
