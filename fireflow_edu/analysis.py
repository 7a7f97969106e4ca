"""Accuracy measurements for any velocity field: error vs step size, velocity-reuse error, round trips.

Every function takes a velocity field ``v(x, t)``, a start state and step counts,
and returns plain dicts of lists (easy to print, plot, or dump as JSON). The
plot helpers live in :mod:`fireflow_edu.plots`. Grids follow the package
convention (t = 1 noise, t = 0 data); ``grid`` maps a step count to a sampling
grid from noise to data (default :func:`~fireflow_edu.schedules.uniform`), and its
reverse is the inversion grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .schedules import uniform
from .solvers import SOLVERS, StepInfo, integrate

Grid = Callable[[int], torch.Tensor]


def rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Root mean square of a - b over every element: sqrt(mean((a - b)^2))."""
    return float((a.double() - b.double()).pow(2).mean().sqrt())


def median_sample_rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Median over the batch (dim 0) of each sample's RMS error: robust to a few outlying samples."""
    per_sample = (a.double() - b.double()).pow(2).reshape(a.shape[0], -1).mean(1).sqrt()
    return float(per_sample.median())


def fit_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x: the observed order of accuracy."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or (x <= 0).any() or (y <= 0).any():
        raise ValueError("fit_slope needs at least two points with positive x and y")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _grids(grid: Grid, num_steps: int, invert: bool) -> torch.Tensor:
    timesteps = grid(num_steps)
    return timesteps.flip(0) if invert else timesteps


@torch.no_grad()
def error_vs_dt(
    velocity,
    x: torch.Tensor,
    step_counts: Sequence[int] = (8, 16, 32, 64),
    methods: Sequence[str] = tuple(SOLVERS),
    grid: Grid = uniform,
    invert: bool = False,
    exact: torch.Tensor | None = None,
    reference_steps: int = 4096,
    progress: bool = True,
) -> dict:
    """Global error at the end of one pass against an exact or fine-step reference.

    ``x`` is the state at the grid's start (noise when sampling, data when
    ``invert``). ``exact`` is the true end state if known; otherwise the end state of
    ``reference_steps`` midpoint steps is used. For each method returns ``steps``,
    ``dt`` (largest |h| of the grid), ``nfe`` and ``error`` (RMSE), plus the fitted
    log-log slopes ``order`` (error vs dt: 1 for euler, 2 for the others) and
    ``nfe_slope`` (error vs NFE, negative). Compare methods at equal NFE, not equal dt:
    that is where FireFlow's single evaluation per step pays. ``progress``: a bar over the passes.
    """
    bar = tqdm(total=len(methods) * len(step_counts) + (exact is None), desc="error vs dt", disable=not progress)
    if exact is None:
        exact = integrate(velocity, x, _grids(grid, reference_steps, invert), "midpoint").x
        bar.update()
    results = {"step_counts": list(step_counts), "methods": {}}
    for method in methods:
        rows = {"steps": [], "dt": [], "nfe": [], "error": []}
        for steps in step_counts:
            timesteps = _grids(grid, steps, invert)
            result = integrate(velocity, x, timesteps, method)
            rows["steps"].append(steps)
            rows["dt"].append(float(timesteps.diff().abs().max()))
            rows["nfe"].append(result.nfe)
            rows["error"].append(rmse(result.x, exact))
            bar.update()
        rows["order"] = fit_slope(rows["dt"], rows["error"])
        rows["nfe_slope"] = fit_slope(rows["nfe"], rows["error"])
        results["methods"][method] = rows
    bar.close()
    return results


@torch.no_grad()
def reuse_error(velocity, x: torch.Tensor, timesteps: torch.Tensor) -> dict:
    """The paper's Figure 3: how far FireFlow's reused velocity is from the true one.

    Runs one FireFlow pass along ``timesteps``. After each step i, the cache holds
    the velocity FireFlow will use at the start of step i + 1, v_hat = v(midpoint of
    step i); the true one is v(x_{i+1}, t_{i+1}). One extra evaluation per step
    measures ``gap`` = RMS(v_hat - v). Those evaluations bypass the solver, so the
    pass (``x``, ``nfe``) is exactly what a plain :func:`solve` gives.

    Because v_hat sits half a step, |h_i| / 2, earlier in time, gap = O(|h_i|):
    ``ratio`` = gap / |h_i| stays bounded as the grid is refined, which is why the
    reuse costs no order of accuracy. Returns lists indexed by the step that reuses
    (1 .. N - 1): ``step``, ``t``, ``dt`` (|h_i|), ``gap``, ``ratio``; plus ``x``, ``nfe``
    and ``max_ratio``.
    """
    rows = {"step": [], "t": [], "dt": [], "gap": [], "ratio": []}

    def measure(info: StepInfo) -> None:
        if info.index == len(timesteps) - 2:
            return  # the final state starts no step, nothing is reused there
        true_velocity = velocity(info.x_next, info.t_next)
        gap = rmse(info.cache["v"], true_velocity)
        dt = abs(info.t_next - info.t)
        rows["step"].append(info.index + 1)
        rows["t"].append(info.t_next)
        rows["dt"].append(dt)
        rows["gap"].append(gap)
        rows["ratio"].append(gap / dt)

    result = integrate(velocity, x, timesteps, "fireflow", callback=measure)
    rows.update(x=result.x, nfe=result.nfe, max_ratio=max(rows["ratio"], default=0.0))
    return rows


@torch.no_grad()
def round_trip_error(
    velocity,
    x_data: torch.Tensor,
    step_counts: Sequence[int] = (4, 8, 16, 32),
    methods: Sequence[str] = ("euler", "rf_solver", "fireflow"),
    grid: Grid = uniform,
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
) -> dict:
    """Invert data to noise, regenerate, and measure how far the result is from the start (Figures 4/7).

    Both passes use the same method and step count on the same grid, reversed for
    inversion; ``nfe`` counts both passes. ``decode`` maps states to the space the
    error is measured in (e.g. latents to RGB 0-255 pixels); identity by default.
    Returns per method ``steps``, ``nfe``, ``rmse``, ``median`` (the median sample's
    RMS error, robust to the few samples a learned flow sends across a boundary) and
    ``order``, the slope of rmse vs steps. ``progress``: a bar over the round trips.
    """
    decode = decode or (lambda z: z)
    reference = decode(x_data)
    results = {"methods": {}}
    bar = tqdm(total=len(methods) * len(step_counts), desc="round trips", disable=not progress)
    for method in methods:
        rows = {"steps": [], "nfe": [], "rmse": [], "median": []}
        for steps in step_counts:
            inversion = integrate(velocity, x_data, _grids(grid, steps, invert=True), method)
            regeneration = integrate(velocity, inversion.x, _grids(grid, steps, invert=False), method)
            rows["steps"].append(steps)
            rows["nfe"].append(inversion.nfe + regeneration.nfe)
            reconstruction = decode(regeneration.x)
            rows["rmse"].append(rmse(reconstruction, reference))
            rows["median"].append(median_sample_rmse(reconstruction, reference))
            bar.update()
        rows["order"] = -fit_slope(rows["steps"], rows["rmse"])
        results["methods"][method] = rows
    bar.close()
    return results
