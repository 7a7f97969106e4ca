"""Fixed-grid ODE solvers for rectified flows: Euler, midpoint, RF-Solver, FireFlow.

Time convention (the one used everywhere in this package, FLUX's)
-----------------------------------------------------------------
``t = 1`` is noise and ``t = 0`` is data: x_t = (1 - t) x_data + t noise, and a
velocity field returns v(x, t) = dx/dt (for a perfect rectified flow,
v = noise - x_data). Sampling walks a grid from 1 down to 0 with signed steps
h = t_{i+1} - t_i < 0; inversion is the same call on the reversed grid (h > 0).
No solver has direction-specific code: the sign of h carries the direction.

Every method is a small step function ``step(velocity, x, t, h, cache) -> x_next``
registered in :data:`SOLVERS` with its order of accuracy; :func:`integrate` is
the one loop that walks the grid, counts function evaluations (NFE), records the
trajectory, shows progress and calls a per-step callback. ``cache`` is a dict
that lives for one pass (one call of :func:`integrate`); only FireFlow uses it.

Tensor shapes: ``x`` is any shape ``[*]``; ``velocity(x, t)`` must return the
same shape. ``t`` reaches the velocity as a Python float. A stateful field (the FLUX
adapter, which injects stored attention features step by step) may also define
``begin_step(index, t, t_next)``: the loop calls it before each step, so the field
knows where it is without searching the grid; ``v(x, t)`` stays the signature.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
from tqdm import tqdm  # text bars everywhere: a reopened notebook has no widget bar to lose

VelocityField = Callable[[torch.Tensor, float], torch.Tensor]
StepFn = Callable[[VelocityField, torch.Tensor, float, float, dict], torch.Tensor]


def euler_step(velocity: VelocityField, x: torch.Tensor, t: float, h: float, cache: dict) -> torch.Tensor:
    """Euler: x_{t+h} = x_t + h v(x_t, t). 1 NFE per step, local error O(h^2), global O(h).

    This is "vanilla ReFlow inversion", the paper's first-order baseline.
    """
    return x + h * velocity(x, t)


def midpoint_step(velocity: VelocityField, x: torch.Tensor, t: float, h: float, cache: dict) -> torch.Tensor:
    """Explicit midpoint: x_{t+h} = x_t + h v(x_t + h/2 v(x_t, t), t + h/2).

    2 NFE per step, local error O(h^3), global O(h^2).
    """
    x_mid = x + (h / 2) * velocity(x, t)
    return x + h * velocity(x_mid, t + h / 2)


def rf_solver_step(velocity: VelocityField, x: torch.Tensor, t: float, h: float, cache: dict) -> torch.Tensor:
    """RF-Solver (Wang et al. 2024): second-order Taylor with a finite-difference derivative.

    v0 = v(x_t, t), vm = v(x_t + h/2 v0, t + h/2), d = (vm - v0) / (h/2) ~ dv/dt, and
    x_{t+h} = x_t + h v0 + h^2/2 d.

    Why it equals the midpoint update: h^2/2 d = h^2/2 (vm - v0) / (h/2) = h (vm - v0),
    so x_{t+h} = x_t + h v0 + h vm - h v0 = x_t + h vm. The two differ only by
    rounding in the order of floating-point operations. 2 NFE per step, global O(h^2).
    """
    v0 = velocity(x, t)
    vm = velocity(x + (h / 2) * v0, t + h / 2)
    derivative = (vm - v0) / (h / 2)
    return x + h * v0 + (h * h / 2) * derivative


def fireflow_step(velocity: VelocityField, x: torch.Tensor, t: float, h: float, cache: dict) -> torch.Tensor:
    """FireFlow (Deng et al. 2024): the midpoint step with a reused start velocity.

    v_start = cache["v"] if set else v(x_t, t)      (a fresh evaluation only on the first step)
    cache["v"] = v(x_t + h/2 v_start, t + h/2)
    x_{t+h} = x_t + h cache["v"]

    The velocity at the previous step's midpoint stands in for v(x_t, t). It is off
    by O(h), which perturbs the midpoint position by O(h^2) and the step by O(h^3):
    local error stays O(h^3), global O(h^2), as for the midpoint method, at about
    one NFE per step (N + 1 for N steps).
    """
    v_start = cache["v"] if "v" in cache else velocity(x, t)
    cache["v"] = velocity(x + (h / 2) * v_start, t + h / 2)
    return x + h * cache["v"]


@dataclass(frozen=True)
class Solver:
    """A registered method: its step function and its global order of accuracy."""

    name: str
    step: StepFn
    order: int


SOLVERS: dict[str, Solver] = {
    "euler": Solver("euler", euler_step, order=1),
    "midpoint": Solver("midpoint", midpoint_step, order=2),
    "rf_solver": Solver("rf_solver", rf_solver_step, order=2),
    "fireflow": Solver("fireflow", fireflow_step, order=2),
}


def get_solver(method: str | StepFn) -> Solver:
    """The registered solver called ``method``; a clear error lists the valid names.

    A callable with the step signature is accepted too (an order is not known for it:
    0), so a learner's own step function runs through the same loop.
    """
    if callable(method):
        return Solver(getattr(method, "__name__", "custom"), method, order=0)
    if method not in SOLVERS:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(SOLVERS)}")
    return SOLVERS[method]


def expected_nfe(method: str, num_steps: int) -> int:
    """NFE of one pass of ``num_steps`` steps: euler N, midpoint 2N, rf_solver 2N, fireflow N + 1."""
    if not isinstance(method, str):
        raise ValueError(f"expected_nfe needs a registered method name, got {method!r}")
    get_solver(method)
    return {"euler": num_steps, "fireflow": num_steps + 1}.get(method, 2 * num_steps)


class CountingVelocity:
    """Wraps a velocity field, counts its calls (``nfe``) and checks each output's shape."""

    def __init__(self, velocity: VelocityField):
        self.velocity = velocity
        self.nfe = 0

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        self.nfe += 1
        v = self.velocity(x, t)
        if not isinstance(v, torch.Tensor) or v.shape != x.shape:
            shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(
                f"velocity(x, t) must return a tensor shaped like x {tuple(x.shape)}, got {shape} at t={t:.6g}"
            )
        return v


def as_timesteps(timesteps: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Validate a time grid: 1-D, at least two finite points, strictly monotone. Returns float64."""
    grid = torch.as_tensor(timesteps, dtype=torch.float64).detach().cpu()
    if grid.ndim != 1 or grid.numel() < 2:
        raise ValueError(f"timesteps must be a 1-D sequence of at least 2 times, got shape {tuple(grid.shape)}")
    if not torch.isfinite(grid).all():
        raise ValueError("timesteps must be finite")
    steps = grid.diff()
    if not ((steps > 0).all() or (steps < 0).all()):
        raise ValueError(
            "timesteps must be strictly monotone (all increasing for inversion, all decreasing for sampling); "
            f"got {grid.tolist()}"
        )
    return grid


@dataclass
class StepInfo:
    """What a per-step callback sees after step ``index`` took ``x`` at ``t`` to ``x_next`` at ``t_next``.

    ``cache`` is a read-only view of the solver's per-pass cache after the step
    (FireFlow: ``cache["v"]`` is the velocity it will reuse at ``(x_next, t_next)``).
    """

    index: int
    t: float
    t_next: float
    x: torch.Tensor
    x_next: torch.Tensor
    cache: Mapping[str, torch.Tensor]


@dataclass
class SolveResult:
    """Output of :func:`integrate`: final state, optional trajectory [N + 1, *x.shape], NFE used."""

    x: torch.Tensor
    nfe: int
    method: str
    timesteps: torch.Tensor
    trajectory: torch.Tensor | None = field(default=None, repr=False)


def integrate(
    velocity: VelocityField,
    x: torch.Tensor,
    timesteps: Sequence[float] | torch.Tensor,
    method: str | StepFn = "fireflow",
    *,
    record_trajectory: bool = False,
    progress: bool = False,
    callback: Callable[[StepInfo], None] | None = None,
    project: Callable[[int, float, torch.Tensor], torch.Tensor] | None = None,
) -> SolveResult:
    """Integrate dx/dt = velocity(x, t) along ``timesteps`` with ``method``: the one solver loop.

    Args:
        velocity: callable ``(x [*], t float) -> dx/dt [*]``.
        x: start state at ``timesteps[0]``, any shape and floating dtype.
        timesteps: strictly monotone 1-D grid; decreasing samples (noise -> data),
            increasing inverts (data -> noise).
        method: a name in :data:`SOLVERS`, or a step function ``(velocity, x, t, h, cache) -> x_next``.
        record_trajectory: keep all N + 1 states (on the device of ``x``).
        progress: show a tqdm bar over the steps.
        callback: called with a :class:`StepInfo` after every step.
        project: ``(index, t_next, x_next) -> x_next``, applied to each new state before the next step (a masked
            edit puts the unedited region back on the inversion's trajectory); the solver's cache is left as it is.

    If ``velocity`` has a ``begin_step(index, t, t_next)`` method it is called before each step.

    Raises ``ValueError`` for an unknown method, a bad grid, a velocity of the wrong
    shape, or a non-finite state (naming the step where it appeared).
    """
    solver = get_solver(method)
    grid = as_timesteps(timesteps)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {type(x).__name__} "
                         f"{getattr(x, 'dtype', '')}".rstrip())
    counted = CountingVelocity(velocity)
    begin_step = getattr(velocity, "begin_step", None)
    cache: dict = {}
    states = [x] if record_trajectory else None
    times = grid.tolist()
    for i in tqdm(range(len(times) - 1), desc=solver.name, disable=not progress, leave=False):
        t, t_next = times[i], times[i + 1]
        if begin_step is not None:
            begin_step(i, t, t_next)
        x_next = solver.step(counted, x, t, t_next - t, cache)
        if project is not None:
            x_next = project(i, t_next, x_next)
        if not torch.isfinite(x_next).all():
            raise ValueError(f"{solver.name}: non-finite values appeared at step {i} (t={t:.6g} -> {t_next:.6g})")
        if callback is not None:
            callback(StepInfo(i, t, t_next, x, x_next, MappingProxyType(cache)))
        x = x_next
        if states is not None:
            states.append(x)
    trajectory = torch.stack(states) if states is not None else None
    return SolveResult(x=x, nfe=counted.nfe, method=solver.name, timesteps=grid, trajectory=trajectory)


def solve(
    velocity: VelocityField,
    x: torch.Tensor,
    timesteps: Sequence[float] | torch.Tensor,
    method: str | StepFn = "fireflow",
    return_trajectory: bool = False,
    **kwargs,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Integrate dx/dt = velocity(x, t) from ``timesteps[0]`` to ``timesteps[-1]``.

    Returns the final state, or ``(x_final, trajectory)`` with the N + 1 states
    stacked along a new first axis when ``return_trajectory``. Extra keyword
    arguments (``progress``, ``callback``) go to :func:`integrate`, which also
    reports the NFE used.
    """
    result = integrate(velocity, x, timesteps, method, record_trajectory=return_trajectory, **kwargs)
    return (result.x, result.trajectory) if return_trajectory else result.x


def num_steps_for_nfe(method: str, nfe: int) -> int:
    """Most steps one pass of ``method`` can take within ``nfe`` evaluations (fireflow 20 -> 19)."""
    per_step = expected_nfe(method, 2) - expected_nfe(method, 1)
    overhead = expected_nfe(method, 1) - per_step
    steps = (nfe - overhead) // per_step
    if steps < 1:
        raise ValueError(f"{method} needs at least {overhead + per_step} NFE for one step, got nfe={nfe}")
    return steps
