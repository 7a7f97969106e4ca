import pytest
import torch

from fireflow_edu.schedules import flux_schedule, flux_shift, uniform

SCHEDULERS = {  # scheduler configs as the models ship them
    "flux-dev": {"use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256,
                 "max_image_seq_len": 4096, "shift": 3.0},
    "flux-schnell": {"use_dynamic_shifting": False, "shift": 1.0},
    "static shift 3 (SD3-like)": {"use_dynamic_shifting": False, "shift": 3.0},
    "linear time shift": {"use_dynamic_shifting": True, "time_shift_type": "linear"},
    "shift terminal": {"use_dynamic_shifting": True, "shift_terminal": 0.1},
}


@pytest.mark.parametrize("name", SCHEDULERS)
@pytest.mark.parametrize("steps, tokens", [(1, 64), (8, 32 * 32), (28, 64 * 64), (10, 4)])
def test_flux_schedule_equals_diffusers_set_timesteps(name, steps, tokens):
    # What FluxPipeline does: sigmas linspace(1, 1/N, N), mu from the token count, set_timesteps.
    if name == "shift terminal" and steps == 1:
        with pytest.raises(ValueError, match="at least 2 steps"):
            flux_schedule(steps, tokens, SCHEDULERS[name])
        return
    diffusers = pytest.importorskip("diffusers")
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(**SCHEDULERS[name])
    c = scheduler.config
    mu = calculate_shift(tokens, c.base_image_seq_len, c.max_image_seq_len, c.base_shift, c.max_shift)
    scheduler.set_timesteps(steps, sigmas=torch.linspace(1, 1 / steps, steps).numpy(), mu=mu)
    ours = flux_schedule(steps, tokens, scheduler.config)
    assert ours.dtype == torch.float64 and ours.shape == (steps + 1,)
    torch.testing.assert_close(ours.float(), scheduler.sigmas, rtol=0, atol=2e-6)


def test_default_is_flux_dev_and_mu_endpoints():
    assert flux_shift(256) == pytest.approx(0.5)
    assert flux_shift(4096) == pytest.approx(1.15)
    assert torch.equal(flux_schedule(8, 1024), flux_schedule(8, 1024, SCHEDULERS["flux-dev"]))


def test_schnell_grid_is_unshifted_and_uniform_reverses():
    torch.testing.assert_close(flux_schedule(4, 4096, SCHEDULERS["flux-schnell"]), uniform(4))
    assert uniform(4, 0.0, 1.0).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_unsupported_scheduler_settings_are_refused():
    with pytest.raises(ValueError, match="use_karras_sigmas"):
        flux_schedule(4, 64, {"use_karras_sigmas": True})


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_step_counts(bad):
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        uniform(bad)
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        flux_schedule(bad, 64)


@pytest.mark.parametrize("name", ["flux-dev", "flux-schnell", "linear time shift"])
@pytest.mark.parametrize("steps, tokens", [(1, 64), (8, 32 * 32), (28, 64 * 64)])
def test_the_flux_adapter_schedule_is_the_pipelines_own_and_equals_the_teaching_formula(name, steps, tokens):
    """FluxAdapter.schedule asks the pipeline's scheduler (set_timesteps, as FluxPipeline calls it); flux_schedule,
    the formula the notebooks teach, gives the same grid."""
    diffusers = pytest.importorskip("diffusers")
    from fireflow_edu.flux.adapter import FluxAdapter

    class Pipe:  # what FluxAdapter.schedule reads of a pipeline
        scheduler = diffusers.FlowMatchEulerDiscreteScheduler(**SCHEDULERS[name])

    grid = FluxAdapter.schedule(type("Adapter", (), {"pipe": Pipe})(), steps, torch.zeros(1, tokens, 4))
    assert grid.dtype == torch.float32 and len(grid) == steps + 1
    torch.testing.assert_close(grid.double(), flux_schedule(steps, tokens, SCHEDULERS[name]), rtol=0, atol=1e-6)

