"""Self-checks for the assignments: compare a learner's step with the reference and name the mistake.

Each ``check_*`` runs the learner's function through the package's solver loop on
seeded fields with exact solutions, both time directions, measures its NFE per
step and its order of accuracy, and either prints one ``PASS Exercise ...`` line
or raises ``AssertionError`` with a hint that names the likely mistake.
"""

from __future__ import annotations

import numpy as np
import torch

from ..analysis import fit_slope, rmse
from ..fields import GaussianRectifiedFlow, LinearField, RiccatiField
from ..schedules import uniform
from ..solvers import SOLVERS, integrate

STEP_COUNTS = (8, 16, 32, 64)


def _fields(seed: int = 0):
    """Seeded fields with exact solutions: a random damped linear system and the Riccati field."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)
    linear = LinearField(a - a.T - 0.5 * torch.eye(3, dtype=torch.float64))
    return [(linear, torch.randn(16, 3, generator=g, dtype=torch.float64)),
            (RiccatiField(), 0.2 + 0.3 * torch.rand(16, 3, generator=g, dtype=torch.float64))]


def _grids(invert: bool):
    return (lambda n: uniform(n, 0.0, 1.0)) if invert else uniform


def _run(step, field, x, grid):
    try:
        return integrate(field, x, grid, step)
    except NotImplementedError:
        raise
    except Exception as error:  # a learner's bug: report it as a failed check, with the cause
        raise AssertionError(f"your step raised {type(error).__name__}: {error}") from error


def measure(step, seed: int = 0) -> dict:
    """Order of accuracy, NFE per pass and the error against the reference, per field and direction."""
    rows = []
    for field, x in _fields(seed):
        for invert in (False, True):
            grid = _grids(invert)
            t0, t1 = (0.0, 1.0) if invert else (1.0, 0.0)
            exact = field.exact(x, t0, t1)
            runs = [_run(step, field, x, grid(n)) for n in STEP_COUNTS]
            errors = [max(rmse(r.x, exact), 1e-300) for r in runs]
            rows.append({"field": type(field).__name__, "invert": invert, "nfe": [r.nfe for r in runs],
                         "errors": errors, "order": fit_slope([1 / n for n in STEP_COUNTS], errors),
                         "results": [r.x for r in runs]})
    return {"rows": rows}


def _matches(measured: dict, method: str, seed: int, tol: float) -> bool:
    """Whether every result equals the registered ``method``'s on the same fields and grids."""
    reference = measure(SOLVERS[method].step, seed)["rows"]
    return all(torch.allclose(a, b, rtol=0, atol=tol)
               for row, ref in zip(measured["rows"], reference) for a, b in zip(row["results"], ref["results"]))


def _direction_hint(measured: dict) -> str | None:
    forward = [row for row in measured["rows"] if not row["invert"]]
    backward = [row for row in measured["rows"] if row["invert"]]
    ok = lambda rows: all(row["errors"][-1] < 0.5 * row["errors"][0] for row in rows)  # converges
    if ok(forward) != ok(backward):
        good, bad = ("sampling (t: 1 -> 0)", "inversion (t: 0 -> 1)") if ok(forward) else \
                    ("inversion (t: 0 -> 1)", "sampling (t: 1 -> 0)")
        return (f"your step works for {good} but not for {bad}: use the signed step h (negative when "
                "sampling) as given, never abs(h) or a fixed sign")
    return None


def _nfe_per_step(measured: dict) -> list[float]:
    return [(row["nfe"][-1] - row["nfe"][0]) / (STEP_COUNTS[-1] - STEP_COUNTS[0]) for row in measured["rows"]]


def _order(measured: dict) -> float:
    return float(np.median([row["order"] for row in measured["rows"]]))


def _pass(exercise: str, message: str) -> None:
    print(f"PASS {exercise}: {message}")


def _require(condition: bool, exercise: str, hint: str) -> None:
    # an explicit raise, not assert: a check must still fail under python -O
    if not condition:
        raise AssertionError(f"{exercise}: {hint}")


def _measure_step(step, exercise: str, seed: int) -> tuple[dict, list[float], float]:
    """Measure a learner's step; fail at once if it only works in one time direction."""
    measured = measure(step, seed)
    hint = _direction_hint(measured)
    _require(hint is None, exercise, hint or "")
    return measured, _nfe_per_step(measured), _order(measured)


def check_euler_step(euler_step, exercise: str = "Exercise A.1", seed: int = 0) -> None:
    """x_next = x + h v(x, t): 1 NFE per step, first order, equal to the reference."""
    measured, nfe, order = _measure_step(euler_step, exercise, seed)
    _require(all(n == 1 for n in nfe), exercise, f"your Euler step used {nfe[0]:g} velocity evaluations per step; "
             "Euler evaluates v once, at the start of the step")
    _require(_matches(measured, "euler", seed, 1e-12), exercise,
             f"your step differs from x + h * v(x, t) (observed order {order:.2f}); "
             "evaluate the velocity at the start of the step, (x, t), not at t + h")
    _pass(exercise, f"euler_step matches the reference: 1 NFE per step, order {order:.2f}")


def check_midpoint_step(midpoint_step, exercise: str = "Exercise B.1", seed: int = 0) -> None:
    """x_next = x + h v(x + h/2 v(x, t), t + h/2): 2 NFE per step, second order."""
    measured, nfe, order = _measure_step(midpoint_step, exercise, seed)
    _require(not (all(n == 1 for n in nfe) and order < 1.5), exercise,
             f"your midpoint step behaves like Euler (1 NFE per step, order {order:.2f}); "
             "take a half Euler step to x + h/2 * v(x, t), then use the velocity there, at t + h/2")
    _require(all(n == 2 for n in nfe), exercise, f"the midpoint method uses 2 NFE per step, yours used {nfe[0]:g}")
    _require(_matches(measured, "midpoint", seed, 1e-10), exercise,
             f"your step is not the midpoint update (observed order {order:.2f}); check the midpoint: "
             "position x + h/2 * v(x, t) and time t + h/2, then x + h * v(midpoint)")
    _pass(exercise, f"midpoint_step matches the reference: 2 NFE per step, order {order:.2f}")


def check_rf_solver_step(rf_solver_step, exercise: str = "Exercise B.2", seed: int = 0) -> None:
    """RF-Solver's Taylor form x + h v0 + h^2/2 (vm - v0)/(h/2): equals the midpoint update to rounding."""
    measured, nfe, order = _measure_step(rf_solver_step, exercise, seed)
    _require(all(n == 2 for n in nfe), exercise, f"RF-Solver uses 2 NFE per step (v0 and vm), yours used {nfe[0]:g}")
    _require(_matches(measured, "midpoint", seed, 1e-9), exercise,
             f"your RF-Solver step is not second-order Taylor (observed order {order:.2f}); "
             "the derivative is (vm - v0) / (h/2) and the update x + h*v0 + h**2/2 * derivative")
    _pass(exercise, f"rf_solver_step equals the midpoint update to rounding: 2 NFE per step, order {order:.2f}")


def check_fireflow_step(fireflow_step, exercise: str = "Exercise C.1", seed: int = 0) -> None:
    """FireFlow: N + 1 NFE per pass, second order, equal to the reference."""
    measured, nfe, order = _measure_step(fireflow_step, exercise, seed)
    _require(not all(n == 2 for n in nfe), exercise, "your fireflow step used 2 NFE per step: reuse the midpoint "
             "velocity of the previous step (cache['v']) as this step's start velocity")
    passes = [row["nfe"] for row in measured["rows"]]
    _require(all(p == [n + 1 for n in STEP_COUNTS] for p in passes), exercise,
             f"a pass of N steps should cost N + 1 NFE, yours cost {passes[0]} for N = {list(STEP_COUNTS)}; "
             "evaluate v(x, t) only when the cache is empty (the first step)")
    _require(order >= 1.5, exercise, f"your fireflow step is only order {order:.2f}; cache the velocity at the "
             "midpoint (the one you step with), not the start velocity")
    _require(_matches(measured, "fireflow", seed, 1e-10), exercise, "your step is second order but differs from "
             "FireFlow's update; the next start velocity must be exactly this step's midpoint velocity")
    _pass(exercise, f"fireflow_step matches the reference: N + 1 NFE per pass, order {order:.2f}")


def check_fit_order(fit_order, exercise: str = "Exercise A.2") -> None:
    """fit_order(dts, errors) -> the least-squares slope of log(error) against log(dt)."""
    dts = [0.1, 0.05, 0.025, 0.0125]
    for order, constant in ((1.0, 3.0), (2.0, 0.5), (2.5, 10.0)):
        errors = [constant * dt**order for dt in dts]
        got = float(fit_order(dts, errors))
        linear_slope = float(np.polyfit(dts, errors, 1)[0])
        hint = ("fit in log-log space: the order is the slope of log(error) against log(dt)"
                if abs(got - linear_slope) < 1e-6 else f"for errors = {constant} * dt^{order} you returned {got:.4f}")
        _require(abs(got - order) <= 1e-6, exercise, hint)
    _pass(exercise, "fit_order recovers the exponent of a power law")


def check_round_trip(round_trip, exercise: str = "Exercise C.2") -> None:
    """round_trip(step, velocity, x, num_steps) -> (x_back, nfe): invert on the reversed grid, then regenerate."""
    field = GaussianRectifiedFlow(torch.tensor([2.0, -1.0], dtype=torch.float64), 0.5)
    x = field.exact(torch.randn(32, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64), 1.0, 0.0)
    step = SOLVERS["fireflow"].step
    x_back, nfe = round_trip(step, field, x, 8)
    inverted = integrate(field, x, uniform(8, 0.0, 1.0), step)
    expected = integrate(field, inverted.x, uniform(8), step)
    _require(nfe == 18, exercise, f"8 FireFlow steps each way should cost 2 x 9 = 18 NFE, you reported {nfe}")
    _require(not torch.allclose(x_back, x, atol=1e-12), exercise,
             "you returned the input unchanged; run the inversion and then the regeneration")
    _require(torch.allclose(x_back, expected.x, atol=1e-10), exercise, "your round trip differs from 'invert along "
             "uniform(n, 0, 1), then regenerate along uniform(n)': check the two grids' directions")
    _pass(exercise, f"round trip matches: RMSE {rmse(x_back, x):.2e} at 18 NFE")

