import math

import pytest
import torch

from fireflow_edu.analysis import error_vs_dt, round_trip_error
from fireflow_edu.fields import GaussianRectifiedFlow, LinearField, RiccatiField
from fireflow_edu.schedules import uniform
from fireflow_edu.solvers import (SOLVERS, expected_nfe, get_solver, integrate, num_steps_for_nfe, solve)

ORDERS = {"euler": 1.0, "midpoint": 2.0, "rf_solver": 2.0, "fireflow": 2.0}
TOLERANCE = {"euler": 0.15, "midpoint": 0.2, "rf_solver": 0.2, "fireflow": 0.2}


def linear_case(dtype):
    # A damped rotation: exact solution by the matrix exponential.
    field = LinearField(torch.tensor([[-1.0, 2.0], [-2.0, -1.0]]))
    return field, torch.randn(64, 2, dtype=dtype)


def riccati_case(dtype):
    return RiccatiField(), 0.2 + 0.3 * torch.rand(16, 3, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("invert", [False, True], ids=["sample", "invert"])
@pytest.mark.parametrize("case", [linear_case, riccati_case], ids=["linear", "riccati"])
def test_global_order_of_accuracy(case, invert, dtype):
    field, x = case(dtype)
    t_from, t_to = (0.0, 1.0) if invert else (1.0, 0.0)
    results = error_vs_dt(field, x, (8, 16, 32, 64), invert=invert, exact=field.exact(x, t_from, t_to))
    for method, rows in results["methods"].items():
        assert rows["order"] == pytest.approx(ORDERS[method], abs=TOLERANCE[method]), (method, rows)
        assert rows["nfe"] == [expected_nfe(method, n) for n in (8, 16, 32, 64)]


@pytest.mark.parametrize("steps", [1, 2, 8, 19])
@pytest.mark.parametrize("method", list(SOLVERS))
def test_exact_nfe(method, steps):
    result = integrate(LinearField(torch.eye(2)), torch.ones(3, 2), uniform(steps), method)
    assert result.nfe == {"euler": steps, "midpoint": 2 * steps, "rf_solver": 2 * steps, "fireflow": steps + 1}[method]
    assert result.nfe == expected_nfe(method, steps)


def test_fireflow_cache_starts_empty_every_call():
    field, x = riccati_case(torch.float64)
    first = integrate(field, x, uniform(8), "fireflow")
    second = integrate(field, x, uniform(8), "fireflow")
    assert first.nfe == second.nfe == 9
    assert torch.equal(first.x, second.x)


def test_nfe_budget_to_steps():
    assert [num_steps_for_nfe(m, 20) for m in ("euler", "midpoint", "rf_solver", "fireflow")] == [20, 10, 10, 19]
    with pytest.raises(ValueError, match="at least 2 NFE"):
        num_steps_for_nfe("fireflow", 1)


def test_round_trip_error_falls_at_second_order():
    field, x = riccati_case(torch.float64)
    results = round_trip_error(field, x, step_counts=(8, 16, 32, 64), methods=("euler", "rf_solver", "fireflow"))
    rows = results["methods"]
    assert rows["euler"]["order"] == pytest.approx(1.0, abs=0.15)
    for method in ("rf_solver", "fireflow"):
        assert rows[method]["order"] >= 1.8, rows[method]
    assert rows["fireflow"]["nfe"] == [2 * (n + 1) for n in (8, 16, 32, 64)]
    # At equal step count fireflow pays ~half the NFE of rf_solver for a comparable error.
    assert rows["fireflow"]["rmse"][-1] < 10 * rows["rf_solver"]["rmse"][-1]


def test_rf_solver_equals_midpoint_to_rounding():
    field = GaussianRectifiedFlow(torch.tensor([3.0, -2.0]), 0.5)
    x = torch.randn(128, 2, dtype=torch.float64)
    for grid in (uniform(7), uniform(7, 0.0, 1.0)):
        a = solve(field, x, grid, "rf_solver")
        b = solve(field, x, grid, "midpoint")
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4), (1, 16, 8, 8)])
def test_any_batch_shape_and_trajectory(shape):
    x = torch.rand(shape, dtype=torch.float64) + 0.2
    final, trajectory = solve(RiccatiField(), x, uniform(6), "fireflow", return_trajectory=True)
    assert final.shape == x.shape
    assert trajectory.shape == (7, *shape)
    assert torch.equal(trajectory[0], x) and torch.equal(trajectory[-1], final)


def test_velocity_receives_python_float_times_along_the_grid():
    seen = []

    def field(x, t):
        seen.append(t)
        return torch.zeros_like(x)

    solve(field, torch.zeros(2), [1.0, 0.5, 0.0], "midpoint")
    assert all(type(t) is float for t in seen)
    assert seen == [1.0, 0.75, 0.5, 0.25]


def test_a_stateful_field_is_told_each_step_before_its_evaluations():
    class Field:
        def __init__(self):
            self.log = []

        def begin_step(self, index, t, t_next):
            self.log.append(("step", index, t, t_next))

        def __call__(self, x, t):
            self.log.append(("eval", t))
            return -x

    field = Field()
    solve(field, torch.ones(2), [0.0, 0.5, 1.0], "fireflow")
    assert field.log == [("step", 0, 0.0, 0.5), ("eval", 0.0), ("eval", 0.25),
                         ("step", 1, 0.5, 1.0), ("eval", 0.75)]


def test_tensor_time_grid_and_callback_and_direction():
    calls = []
    x = torch.ones(3, dtype=torch.float64)
    forward = solve(lambda x, t: -x, x, torch.linspace(0, 1, 33), "fireflow", callback=calls.append)
    assert len(calls) == 32 and calls[0].t == 0.0 and calls[-1].t_next == 1.0
    assert torch.allclose(forward, x * math.exp(-1), atol=1e-3)
    back = solve(lambda x, t: -x, forward, torch.linspace(1, 0, 33), "fireflow")
    assert torch.allclose(back, x, atol=1e-3)


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match="euler, midpoint, rf_solver, fireflow"):
        solve(lambda x, t: x, torch.ones(2), uniform(2), "heun")
    with pytest.raises(ValueError, match="unknown method"):
        get_solver("Euler")


@pytest.mark.parametrize("grid", [[0.0], [], [1.0, 0.5, 0.7, 0.0], [1.0, 1.0, 0.0], [[1.0, 0.0]], [1.0, float("nan")]])
def test_bad_grids(grid):
    with pytest.raises(ValueError, match="timesteps"):
        solve(lambda x, t: x, torch.ones(2), grid, "euler")


def test_velocity_of_wrong_shape():
    with pytest.raises(ValueError, match=r"shaped like x \(4, 2\), got \(4,\)"):
        solve(lambda x, t: x.sum(-1), torch.ones(4, 2), uniform(3), "euler")
    with pytest.raises(ValueError, match="got float"):
        solve(lambda x, t: 1.0, torch.ones(4, 2), uniform(3), "euler")


def test_non_finite_state_names_the_step():
    def blows_up_late(x, t):
        return x * (float("inf") if t <= 0.5 else 1.0)

    with pytest.raises(ValueError, match=r"non-finite values appeared at step 2 \(t=0\.5"):
        solve(blows_up_late, torch.ones(2), uniform(4), "euler")


def test_integer_state_rejected():
    with pytest.raises(ValueError, match="floating-point"):
        solve(lambda x, t: x, torch.ones(2, dtype=torch.int64), uniform(2), "euler")
