"""Time grids for :func:`fireflow_edu.solvers.solve`.

All grids follow the package convention (t = 1 noise, t = 0 data): a sampling
grid runs from 1 down to 0, and its reverse is the inversion grid.
"""

from __future__ import annotations

import math

import torch


def _check_steps(num_steps: int) -> None:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")


def uniform(num_steps: int, start: float = 1.0, end: float = 0.0) -> torch.Tensor:
    """``num_steps + 1`` evenly spaced times from ``start`` to ``end`` (float64)."""
    _check_steps(num_steps)
    return torch.linspace(start, end, num_steps + 1, dtype=torch.float64)


FLUX_DEV_SCHEDULER = {  # FLUX.1-dev's scheduler_config.json: the defaults when no pipeline is given
    "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256,
    "max_image_seq_len": 4096, "shift": 3.0, "time_shift_type": "exponential", "shift_terminal": None,
}
UNSUPPORTED = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "invert_sigmas")


def flux_shift(image_seq_len: int, base_shift: float = 0.5, max_shift: float = 1.15,
               base_seq_len: int = 256, max_seq_len: int = 4096) -> float:
    """FLUX's resolution-dependent shift mu, linear in the number of image tokens.

    mu = base_shift + (L - base_seq_len) (max_shift - base_shift) / (max_seq_len - base_seq_len);
    with the defaults, mu = 0.5 + (L - 256) * 0.65 / 3840 (0.63 at 512^2, 1.15 at 1024^2).
    """
    if image_seq_len < 1:
        raise ValueError(f"image_seq_len must be positive, got {image_seq_len}")
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return base_shift + (image_seq_len - base_seq_len) * slope


def flux_schedule(num_steps: int, image_seq_len: int, scheduler_config=None) -> torch.Tensor:
    """The N + 1 sampling times a FluxPipeline uses, from 1 (noise) down to 0 (data) (float64).

    Reproduces ``FluxPipeline`` + ``FlowMatchEulerDiscreteScheduler.set_timesteps``: s = linspace(1, 1/N, N),
    then with ``use_dynamic_shifting`` t = e^mu / (e^mu + 1/s - 1) (``time_shift_type`` "linear":
    mu / (mu + 1/s - 1)) with mu from :func:`flux_shift`, otherwise the static t = k s / (1 + (k - 1) s) for
    ``shift`` k (1 for FLUX-schnell: the plain grid); an optional ``shift_terminal`` stretch; then a final 0.
    ``scheduler_config`` is a pipeline's ``scheduler.config`` (any mapping; FLUX.1-dev's when None).
    ``image_seq_len`` is the number of image tokens, (H / 16) * (W / 16).
    """
    _check_steps(num_steps)
    config = {**FLUX_DEV_SCHEDULER, **dict(scheduler_config or {})}
    unsupported = [key for key in UNSUPPORTED if config.get(key)]
    if unsupported:
        raise ValueError(f"scheduler settings {', '.join(unsupported)} are not supported by flux_schedule")
    s = torch.linspace(1.0, 1.0 / num_steps, num_steps, dtype=torch.float64)
    if config["use_dynamic_shifting"]:
        mu = flux_shift(image_seq_len, config["base_shift"], config["max_shift"], config["base_image_seq_len"],
                        config["max_image_seq_len"])
        if config["time_shift_type"] == "exponential":
            t = math.exp(mu) / (math.exp(mu) + (1 / s - 1))
        elif config["time_shift_type"] == "linear":
            t = mu / (mu + (1 / s - 1))
        else:
            raise ValueError(f"time_shift_type {config['time_shift_type']!r} is not exponential or linear")
    else:
        k = config["shift"]
        t = k * s / (1 + (k - 1) * s)
    if config["shift_terminal"]:
        if num_steps == 1:  # the stretch divides by 1 - t[-1] = 0 (diffusers returns NaN)
            raise ValueError("a scheduler with shift_terminal needs at least 2 steps")
        t = 1 - (1 - t) / ((1 - t[-1]) / (1 - config["shift_terminal"]))
    return torch.cat([t, t.new_zeros(1)])
