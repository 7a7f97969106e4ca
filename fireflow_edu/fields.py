"""Velocity fields with exact solutions, for tests, notebooks and assignments.

Each field is ``field(x, t) -> dx/dt`` (any batch shape unless stated) and has
``exact(x, t_from, t_to)``, the true flow map, so a solver's error can be
measured without a reference simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class GaussianRectifiedFlow:
    """The exact rectified flow from noise N(0, I) (t = 1) to data N(mean, std^2 I) (t = 0).

    With independent coupling, x_t = (1 - t) d + t n is Gaussian with mean (1 - t) mean
    and variance s_t^2 = (1 - t)^2 std^2 + t^2, and the ideal velocity
    E[n - d | x_t] is affine in x:

        v(x, t) = -mean + (t - (1 - t) std^2) / s_t^2 (x - (1 - t) mean).

    Its paths are not straight (speed changes with t), yet the flow map is exact:
    x(t1) = (1 - t1) mean + s_{t1} / s_{t0} (x(t0) - (1 - t0) mean).
    ``x`` has shape [..., d] with d = len(mean).
    """

    mean: torch.Tensor
    std: float = 0.5

    def _sigma(self, t: float) -> float:
        return math.sqrt((1 - t) ** 2 * self.std**2 + t**2)

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        t = float(t)
        mean = self.mean.to(x)
        gain = (t - (1 - t) * self.std**2) / self._sigma(t) ** 2
        return -mean + gain * (x - (1 - t) * mean)

    def exact(self, x: torch.Tensor, t_from: float, t_to: float) -> torch.Tensor:
        mean = self.mean.to(x)
        return (1 - t_to) * mean + self._sigma(t_to) / self._sigma(t_from) * (x - (1 - t_from) * mean)


@dataclass
class LinearField:
    """dx/dt = A x for x of shape [..., d]; exact map x(t1) = expm((t1 - t0) A) x(t0)."""

    matrix: torch.Tensor

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return x @ self.matrix.to(x).T

    def exact(self, x: torch.Tensor, t_from: float, t_to: float) -> torch.Tensor:
        propagator = torch.linalg.matrix_exp((t_to - t_from) * self.matrix.double())
        return (x.double() @ propagator.T).to(x.dtype)


@dataclass
class RiccatiField:
    """dx/dt = cos(t) x^2 elementwise (nonlinear, time-dependent); exact 1/x(t1) = 1/x(t0) - (sin t1 - sin t0).

    Keep x positive and below 1 / (sin t1 - sin t0) to stay clear of the blow-up.
    """

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return math.cos(float(t)) * x * x

    def exact(self, x: torch.Tensor, t_from: float, t_to: float) -> torch.Tensor:
        return 1.0 / (1.0 / x - (math.sin(t_to) - math.sin(t_from)))
