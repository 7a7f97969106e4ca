"""The Figure-2 experiment end to end: train 1-RF and 2-RF, compare solvers at equal NFE."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..analysis import rmse
from ..schedules import uniform
from ..solvers import expected_nfe, integrate, num_steps_for_nfe
from .metrics import precision_recall, straightness, w2_distance, w2_floor
from .mixtures import GaussianMixture, default_source, default_target
from .model import VelocityMLP, independent_pairs, reflow, train_rectified_flow

FIGURE2_METHODS = ("euler", "midpoint", "fireflow")


@dataclass
class ToyFlows:
    """A trained 1-RF and its reflowed 2-RF, with the mixtures and loss histories."""

    source: GaussianMixture
    target: GaussianMixture
    rf1: VelocityMLP
    rf2: VelocityMLP
    losses1: list[float] = field(repr=False)
    losses2: list[float] = field(repr=False)


def train_toy_flows(iterations: int = 10_000, reflow_pairs: int = 10_000, seed: int = 0,
                    source: GaussianMixture | None = None, target: GaussianMixture | None = None,
                    progress: bool = True) -> ToyFlows:
    """Train 1-RF on independent pairs, then reflow it into 2-RF (both ``iterations`` Adam steps)."""
    source = source or default_source()
    target = target or default_target()
    torch.manual_seed(seed)
    rf1 = VelocityMLP(source.dim)
    losses1 = train_rectified_flow(rf1, independent_pairs(source, target), iterations, seed=seed,
                                   progress=progress, desc="1-RF")
    rf2, losses2 = reflow(rf1, source, reflow_pairs, iterations, seed=seed, progress=progress)
    for model in (rf1, rf2):
        model.eval().requires_grad_(False)
    return ToyFlows(source, target, rf1, rf2, losses1, losses2)


@torch.no_grad()
def compare_solvers(model, source: GaussianMixture, target: GaussianMixture, nfe: int = 20,
                    methods=FIGURE2_METHODS, num_samples: int = 2000, reference_steps: int = 1000,
                    seed: int = 123) -> dict:
    """Run each method at (at most) ``nfe`` evaluations on the same noise samples.

    For each method returns steps, NFE used, W2 to a fresh target sample, k-NN precision
    and recall against it (precision falls with stray samples between the modes), and the
    RMSE to a fine-grid reference solution of the same ODE (the pure solver error, free of
    model error). Also returns the W2 floor between two target samples and the
    trajectories ([N + 1, n, 2]) for plotting.
    """
    generator = torch.Generator().manual_seed(seed)
    x_noise = source.sample(num_samples, generator, stratified=True)
    target_sample = target.sample(num_samples, generator, stratified=True)
    reference = integrate(model, x_noise, uniform(reference_steps), "midpoint").x
    rows, trajectories = {}, {}
    for method in methods:
        steps = num_steps_for_nfe(method, nfe)
        result = integrate(model, x_noise, uniform(steps), method, record_trajectory=True)
        assert result.nfe == expected_nfe(method, steps)
        trajectories[method] = result.trajectory
        rows[method] = {
            "steps": steps,
            "nfe": result.nfe,
            "w2_to_target": w2_distance(result.x, target_sample),
            **precision_recall(result.x, target_sample),
            "rmse_to_reference": rmse(result.x, reference),
        }
    return {
        "nfe_budget": nfe,
        "num_samples": num_samples,
        "w2_floor": w2_floor(target, num_samples, seed=seed + 1),
        "methods": rows,
        "x_noise": x_noise,
        "target_sample": target_sample,
        "trajectories": trajectories,
    }


def straightness_report(flows: ToyFlows, num_samples: int = 2000, seed: int = 7) -> dict:
    """Straightness of 1-RF and 2-RF on the same noise samples."""
    x_noise = flows.source.sample(num_samples, torch.Generator().manual_seed(seed))
    return {"1-RF": straightness(flows.rf1, x_noise), "2-RF": straightness(flows.rf2, x_noise)}
