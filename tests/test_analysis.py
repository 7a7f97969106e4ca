import pytest
import torch

from fireflow_edu.analysis import error_vs_dt, fit_slope, median_sample_rmse, reuse_error, rmse, round_trip_error
from fireflow_edu.fields import GaussianRectifiedFlow, LinearField, RiccatiField
from fireflow_edu.schedules import uniform
from fireflow_edu.solvers import integrate


def test_fit_slope_recovers_a_power_law():
    dt = [0.1, 0.05, 0.025]
    assert fit_slope(dt, [3 * d**2 for d in dt]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="positive"):
        fit_slope([0.1, 0.0], [1.0, 1.0])


def test_error_vs_dt_slopes_and_equal_nfe_ranking():
    field = LinearField(torch.tensor([[-1.0, 2.0], [-2.0, -1.0]]))
    x = torch.randn(32, 2, dtype=torch.float64)
    result = error_vs_dt(field, x, (16, 32, 64, 128), exact=field.exact(x, 1.0, 0.0))
    rows = result["methods"]
    assert rows["euler"]["order"] == pytest.approx(1.0, abs=0.1)
    for method in ("midpoint", "rf_solver", "fireflow"):
        assert rows[method]["order"] == pytest.approx(2.0, abs=0.1)
        assert rows[method]["nfe_slope"] == pytest.approx(-2.0, abs=0.1)
    # equal NFE: fireflow with 127 steps (128 NFE) against midpoint with 64 steps (128 NFE)
    fireflow_128 = integrate(field, x, uniform(127), "fireflow").x
    assert rmse(fireflow_128, field.exact(x, 1.0, 0.0)) < rows["midpoint"]["error"][2]


def test_fine_step_reference_agrees_with_exact_solution():
    field = RiccatiField()
    x = 0.2 + 0.3 * torch.rand(8, 3, dtype=torch.float64)
    with_exact = error_vs_dt(field, x, (8, 16), methods=("euler",), exact=field.exact(x, 1.0, 0.0))
    with_reference = error_vs_dt(field, x, (8, 16), methods=("euler",))
    assert with_reference["methods"]["euler"]["error"] == pytest.approx(with_exact["methods"]["euler"]["error"], rel=1e-4)


@pytest.mark.parametrize("invert", [False, True])
def test_reuse_gap_shrinks_like_dt(invert):
    field = RiccatiField()
    x = 0.2 + 0.3 * torch.rand(16, 3, dtype=torch.float64)
    grid = (lambda n: uniform(n, 0.0, 1.0)) if invert else uniform
    ratios = [reuse_error(field, x, grid(n))["max_ratio"] for n in (10, 20, 40, 80)]
    assert max(ratios) < 1.5 * min(ratios), ratios
    gaps = [max(reuse_error(field, x, grid(n))["gap"]) for n in (10, 80)]
    assert gaps[1] < gaps[0] / 5  # 8x smaller steps, gap at least 5x smaller


def test_reuse_measurement_leaves_the_pass_unchanged():
    field = GaussianRectifiedFlow(torch.tensor([2.0, -1.0]), 0.7)
    x = torch.randn(64, 2)
    measured = reuse_error(field, x, uniform(12))
    plain = integrate(field, x, uniform(12), "fireflow")
    assert torch.equal(measured["x"], plain.x)
    assert measured["nfe"] == plain.nfe == 13
    assert measured["step"] == list(range(1, 12))


def test_reuse_gap_is_exact_for_a_known_case():
    # v(x, t) = t: fireflow's cached midpoint velocity is t + h/2, the true one is t + h: gap = |h|/2.
    measured = reuse_error(lambda x, t: torch.full_like(x, t), torch.zeros(3, dtype=torch.float64), uniform(4))
    assert measured["gap"] == pytest.approx([0.125] * 3)
    assert measured["ratio"] == pytest.approx([0.5] * 3)


def test_round_trip_counts_both_passes_and_median_is_robust():
    field = RiccatiField()
    x = 0.2 + 0.3 * torch.rand(16, 3, dtype=torch.float64)
    result = round_trip_error(field, x, step_counts=(8, 16, 32), methods=("euler", "fireflow"))
    assert result["methods"]["fireflow"]["nfe"] == [18, 34, 66]
    assert result["methods"]["euler"]["nfe"] == [16, 32, 64]
    assert result["methods"]["fireflow"]["order"] > 1.8
    a, b = torch.zeros(5, 2), torch.zeros(5, 2)
    b[0] = 100.0
    assert median_sample_rmse(a, b) == 0.0 and rmse(a, b) > 40
