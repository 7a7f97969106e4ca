"""Toy-flow metrics: straightness of the learned paths, a sample distance to the target, precision and recall."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ..schedules import uniform
from ..solvers import solve

MAX_ASSIGNMENT_POINTS = 2000


@torch.no_grad()
def straightness(velocity, x_noise: torch.Tensor, steps: int = 100) -> float:
    """S = E int_0^1 || (Z_1 - Z_0) - v(Z_t, t) ||^2 dt along the flow started at ``x_noise``.

    Z is simulated with ``steps`` midpoint steps from t = 1 to t = 0 and the integral
    is the mean over the grid's start times. S = 0 exactly when every path is a straight
    line travelled at constant speed, which is when one Euler step is exact.
    """
    grid = uniform(steps)
    _, path = solve(velocity, x_noise, grid, "midpoint", return_trajectory=True)
    displacement = path[0] - path[-1]  # Z(t=1) - Z(t=0) = dx/dt of the straight line
    gaps = [(displacement - velocity(path[i], float(grid[i]))).pow(2).sum(-1).mean() for i in range(steps)]
    return float(torch.stack(gaps).mean())


def w2_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Exact-assignment Wasserstein-2 between two equal-size point clouds [n, d], n <= 2000.

    W2 = sqrt(min over permutations of mean ||a_i - b_pi(i)||^2), solved with the
    Hungarian algorithm. Even two samples of the same law are apart by a finite-sample
    floor (see :func:`w2_floor`): compare against it, not against zero.
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"need two point clouds of the same shape [n, d], got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] > MAX_ASSIGNMENT_POINTS:
        raise ValueError(f"exact assignment is O(n^3): use at most {MAX_ASSIGNMENT_POINTS} points, got {a.shape[0]}")
    cost = torch.cdist(a.double(), b.double()).pow(2).numpy()
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def w2_floor(target, n: int, seed: int = 0) -> float:
    """W2 between two fresh stratified samples of ``target`` of size ``n`` (exact mode counts in both): the
    resolution limit of a W2 on ``n`` points, reached only by a sampler whose mode counts are exact."""
    generator = torch.Generator().manual_seed(seed)
    return w2_distance(target.sample(n, generator, stratified=True), target.sample(n, generator, stratified=True))


def w2_exact_sampler(target, n: int, seed: int = 0, draws: int = 4) -> float:
    """Mean W2, over ``draws``, between an i.i.d. sample of ``target`` and a stratified one, size ``n`` each.

    What a perfect sampler scores against the stratified reference: its mode counts vary from draw to draw
    as any sampler's do, and with modes far apart a few points in the wrong mode dominate W2. A solver's W2
    near this level is as good as ``n`` points can tell.
    """
    generator = torch.Generator().manual_seed(seed)
    return float(np.mean([w2_distance(target.sample(n, generator), target.sample(n, generator, stratified=True))
                          for _ in range(draws)]))


def mode_mass_error(samples: torch.Tensor, target) -> float:
    """Largest gap between the share of ``samples`` [n, d] nearest each mean of ``target`` and that mode's weight.

    Nearest-mean assignment is right for well-separated modes (the default mixtures: 17 apart, std 0.55).
    Moving a share delta of the mass between modes d apart costs about sqrt(delta) d in W2 (a 1% error alone
    is W2 ~ 1.7 there), so on many samples this is the part of W2 that the model, not the sample, gets wrong.
    """
    nearest = torch.cdist(samples.double(), target.means.double()).argmin(1)
    shares = torch.bincount(nearest, minlength=len(target.means)).double() / len(samples)
    return float((shares - target.weights.double()).abs().max())


def precision_recall(generated: torch.Tensor, real: torch.Tensor, k: int = 3) -> dict[str, float]:
    """k-NN precision and recall of generated samples (Kynkaanniemi et al. 2019), both [n, d].

    Each cloud's manifold is the union of balls around its points with radius the distance to the
    point's k-th nearest neighbour. Precision: share of generated points inside the real manifold
    (stray samples between the modes lower it). Recall: share of real points inside the generated
    manifold (a dropped or thinned mode lowers it). Neighbour search by scikit-learn.
    """
    from sklearn.neighbors import NearestNeighbors

    if generated.ndim != 2 or real.ndim != 2 or generated.shape[1] != real.shape[1]:
        raise ValueError(f"need two point clouds [n, d] of the same d, got {tuple(generated.shape)} and {tuple(real.shape)}")
    if min(len(generated), len(real)) <= k:
        raise ValueError(f"need more than k = {k} points in each cloud")

    def coverage(points: np.ndarray, manifold: np.ndarray) -> float:
        radii = NearestNeighbors(n_neighbors=k + 1).fit(manifold).kneighbors(manifold)[0][:, k]  # [0] is itself
        distances = NearestNeighbors(radius=radii.max()).fit(manifold).radius_neighbors(points)
        return float(np.mean([np.any(d <= radii[i]) for d, i in zip(*distances)]))

    generated, real = generated.double().numpy(), real.double().numpy()
    return {"precision": coverage(generated, real), "recall": coverage(real, generated)}
