"""Gaussian mixtures in 2D: the source (noise, t = 1) and target (data, t = 0) of the toy flow.

The defaults are Liu et al.'s 2-Rectified-Flow tutorial setup used for the
paper's Figure 2: D = 10, variance 0.3, three equal-weight components each, on
opposite triangles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GaussianMixture:
    """An isotropic Gaussian mixture. ``means`` [K, d], ``variance`` shared, ``weights`` [K] (sum 1)."""

    means: torch.Tensor
    variance: float = 0.3
    weights: torch.Tensor | None = None

    def __post_init__(self):
        means = torch.as_tensor(self.means, dtype=torch.float32)
        if means.ndim != 2 or means.shape[0] < 1:
            raise ValueError(f"means must have shape [K, d] with K >= 1, got {tuple(means.shape)}")
        if not self.variance > 0:
            raise ValueError(f"variance must be positive, got {self.variance}")
        k = means.shape[0]
        weights = torch.full((k,), 1.0 / k) if self.weights is None else torch.as_tensor(self.weights, dtype=torch.float32)
        if weights.shape != (k,) or (weights < 0).any() or abs(float(weights.sum()) - 1.0) > 1e-5:
            raise ValueError(f"weights must be {k} non-negative numbers summing to 1, got {weights.tolist()}")
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "weights", weights)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None, stratified: bool = False) -> torch.Tensor:
        """``n`` samples, shape [n, d].

        ``stratified=True`` fixes each component's count to n * weight (rounded, in
        shuffled order) instead of drawing it: two stratified samples then differ only
        within components, which removes most of the finite-sample noise of a distance
        between far-apart clusters.
        """
        if stratified:
            counts = torch.floor(self.weights * n).long()
            counts[: n - int(counts.sum())] += 1
            component = torch.repeat_interleave(torch.arange(len(counts)), counts)
            component = component[torch.randperm(n, generator=generator)]
        else:
            component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator)
        return self.means[component] + math.sqrt(self.variance) * noise

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density at ``x`` [n, d] -> [n]."""
        sq = ((x[:, None, :] - self.means[None]) ** 2).sum(-1)
        log_normal = -0.5 * sq / self.variance - 0.5 * self.dim * math.log(2 * math.pi * self.variance)
        return torch.logsumexp(log_normal + self.weights.log()[None], dim=1)


def triangle_means(scale: float, flip: bool) -> torch.Tensor:
    """Corners of an equilateral triangle: (±D√3/2, D/2), (0, -D√3/2); ``flip`` mirrors y."""
    r = scale * math.sqrt(3) / 2
    means = torch.tensor([[r, scale / 2], [-r, scale / 2], [0.0, -r]])
    return means * torch.tensor([1.0, -1.0]) if flip else means


def default_source(scale: float = 10.0, variance: float = 0.3) -> GaussianMixture:
    """pi0, the noise side (t = 1): means (±D√3/2, D/2), (0, -D√3/2)."""
    return GaussianMixture(triangle_means(scale, flip=False), variance)


def default_target(scale: float = 10.0, variance: float = 0.3) -> GaussianMixture:
    """pi1, the data side (t = 0): means (±D√3/2, -D/2), (0, D√3/2)."""
    return GaussianMixture(triangle_means(scale, flip=True), variance)
