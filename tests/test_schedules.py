import pytest
import torch

from fireflow_edu.schedules import flux_schedule, flux_shift, uniform


def test_flux_schedule_matches_flux_dev_at_512_and_1024():
    expected_512 = [1, 0.929, 0.849, 0.758, 0.653, 0.530, 0.385, 0.212, 0]
    expected_1024 = [1, 0.957, 0.905, 0.840, 0.760, 0.655, 0.513, 0.311, 0]
    assert flux_shift(32 * 32) == pytest.approx(0.63)
    assert flux_shift(64 * 64) == pytest.approx(1.15)
    assert flux_schedule(8, 32 * 32).tolist() == pytest.approx(expected_512, abs=1e-3)
    assert flux_schedule(8, 64 * 64).tolist() == pytest.approx(expected_1024, abs=1e-3)


def test_schnell_grid_is_unshifted_and_uniform_reverses():
    assert torch.equal(flux_schedule(4, 4096, shift=False), uniform(4))
    assert uniform(4, 0.0, 1.0).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_step_counts(bad):
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        uniform(bad)
