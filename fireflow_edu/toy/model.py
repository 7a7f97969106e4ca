"""The toy velocity network and rectified-flow training (1-RF on independent pairs, reflow to 2-RF).

Package convention: x_t = (1 - t) x_data + t x_noise and the regression target
is dx/dt = x_noise - x_data (Liu et al. write x_t = t x1 + (1 - t) x0 with the
opposite time; the straight paths are the same).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from tqdm import tqdm

from ..schedules import uniform
from ..solvers import solve

PairSampler = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


class VelocityMLP(nn.Module):
    """v(x, t): an MLP on [x, t] with two tanh hidden layers (width 100 by default, as in Liu's tutorial).

    ``forward(x [n, d], t float or tensor) -> [n, d]``; a scalar ``t`` is broadcast.
    """

    def __init__(self, dim: int = 2, hidden: int = 100):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim + 1, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        t = t.expand(x.shape[0]) if t.ndim == 0 else t.reshape(x.shape[0])
        return self.net(torch.cat([x, t[:, None]], dim=1))


def rectified_flow_loss(model: nn.Module, x_noise: torch.Tensor, x_data: torch.Tensor,
                        generator: torch.Generator) -> torch.Tensor:
    """E_t || (x_noise - x_data) - v((1 - t) x_data + t x_noise, t) ||^2 with t ~ U(0, 1)."""
    t = torch.rand(x_noise.shape[0], 1, generator=generator)
    x_t = (1 - t) * x_data + t * x_noise
    return ((x_noise - x_data) - model(x_t, t[:, 0])).pow(2).sum(1).mean()


def train_rectified_flow(
    model: nn.Module,
    sample_pairs: PairSampler,
    iterations: int = 10_000,
    batch_size: int = 2048,
    lr: float = 5e-3,
    seed: int = 0,
    progress: bool = True,
    desc: str = "rectified flow",
) -> list[float]:
    """Fit ``model`` to straight paths between ``sample_pairs(batch, generator) -> (x_noise, x_data)``.

    Adam with cosine learning-rate decay, one fresh batch per iteration. Returns the loss history (one per iteration).
    """
    if iterations < 1 or batch_size < 1:
        raise ValueError(f"iterations and batch_size must be positive, got {iterations}, {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    # Cosine decay to zero: the noisy late Adam steps otherwise leave the field
    # visibly off in the crossing region, where 1-RF must average many directions.
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iterations)
    losses = []
    bar = tqdm(range(iterations), desc=desc, disable=not progress)
    for _ in bar:
        x_noise, x_data = sample_pairs(batch_size, generator)
        loss = rectified_flow_loss(model, x_noise, x_data, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if len(losses) % 500 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return losses


def independent_pairs(source, target) -> PairSampler:
    """Sampler of independent (noise, data) pairs: the 1-RF coupling."""
    def sample(n: int, generator: torch.Generator):
        return source.sample(n, generator), target.sample(n, generator)
    return sample


@torch.no_grad()
def reflow_pairs(model: nn.Module, x_noise: torch.Tensor, steps: int = 100) -> torch.Tensor:
    """Couple each noise point with where the flow takes it: Euler over ``steps`` steps from t=1 to t=0."""
    return solve(model, x_noise, uniform(steps), "euler")


def fixed_pairs(x_noise: torch.Tensor, x_data: torch.Tensor) -> PairSampler:
    """Sampler drawing minibatches (with replacement) from a fixed coupling, as reflow trains on."""
    def sample(n: int, generator: torch.Generator):
        idx = torch.randint(0, x_noise.shape[0], (n,), generator=generator)
        return x_noise[idx], x_data[idx]
    return sample


def reflow(model: nn.Module, source, num_pairs: int, iterations: int, seed: int = 0,
           simulation_steps: int = 100, progress: bool = True, **train_kwargs) -> tuple[nn.Module, list[float]]:
    """2-RF from 1-RF: simulate ``model`` on ``num_pairs`` noise points, then train a copy on those pairs."""
    generator = torch.Generator().manual_seed(seed + 1)
    x_noise = source.sample(num_pairs, generator)
    x_data = reflow_pairs(model, x_noise, simulation_steps)
    model_2 = copy.deepcopy(model).requires_grad_(True)
    losses = train_rectified_flow(model_2, fixed_pairs(x_noise, x_data), iterations, seed=seed + 2,
                                  progress=progress, desc="2-RF (reflow)", **train_kwargs)
    return model_2, losses
