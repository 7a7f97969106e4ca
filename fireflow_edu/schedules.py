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


def flux_schedule(num_steps: int, image_seq_len: int, shift: bool = True) -> torch.Tensor:
    """The N + 1 FLUX.1-dev sampling times, from 1 (noise) down to 0 (data).

    t_i = linspace(1, 0, N + 1), then t' = e^mu / (e^mu + 1/t - 1) with mu from
    :func:`flux_shift`; t = 0 stays 0. ``shift=False`` gives FLUX-schnell's plain grid.
    ``image_seq_len`` is the number of image tokens, (H / 16) * (W / 16).
    """
    t = uniform(num_steps)
    if not shift:
        return t
    e_mu = math.exp(flux_shift(image_seq_len))
    shifted = torch.zeros_like(t)
    positive = t > 0
    shifted[positive] = e_mu / (e_mu + 1.0 / t[positive] - 1.0)
    return shifted
