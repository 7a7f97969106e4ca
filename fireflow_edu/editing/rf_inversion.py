"""RF-Inversion (Rout et al., "Semantic Image Inversion and Editing using Rectified Stochastic Differential
Equations", ICLR 2025) on any model family, through the same boundary, clock and results as FireFlow's recipe.

Both passes integrate a *controlled* ODE: the model's velocity pulled, with some strength, toward the straight
line to a fixed end point (in this package's time, t = 1 noise, t = 0 data):

- inversion (the paper's Algorithm 1, Eq. 8), t: 0 -> 1, toward one fixed noise sample y_1:
      dx/dt = u(x, t) + gamma ((y_1 - x) / (1 - t) - u(x, t)),          u: the inversion prompt's velocity;
- editing (Algorithm 2), t: 1 -> 0, from the inverted latents toward the source latents y_0:
      dx/dt = v(x, t) + eta_i ((x - y_0) / t - v(x, t)),                  v: the target prompt's velocity,
  where eta_i = eta on the denoising steps i with int(start N) <= i < min(int(stop N), N), counted from the noise
  end, and 0 elsewhere: early steps keep the source's layout, later ones follow the target prompt freely.

(y_1 - x) / (1 - t) and (x - y_0) / t are the velocities of the straight lines through x that end at y_1 at t = 1
and at y_0 at t = 0. Each pass takes Euler steps on the pipeline's own schedule with one model call per step, so an
edit costs 2N NFE (the paper's Table 4: 28 + 28 = 56). gamma = eta = 0 is plain Euler inversion and denoising.

Defaults are those of diffusers' community pipeline ``examples/community/pipeline_flux_rf_inversion.py``: 28 steps,
gamma 0.5, eta 1.0, start 0, stop 0.25, the empty prompt inverted, and the guidance its authors ran on the family
(``adapter.method_defaults("rf_inversion")``: FLUX.1-dev 0 to invert, 3.5 to edit). One difference: that pipeline
feeds its inversion's transformer the linear time i / N while it steps along the shifted schedule; here every
evaluation happens at the grid's own time, so the forward pass walks the same grid as the reverse one.
"""

from __future__ import annotations

import torch

from ..timing import Clock
from .boundary import Guidance, model_adapter
from .passes import EditResult, Passes, check_fraction, check_steps, edit_result


class ControlledVelocity:
    """u(x, t) + s_i ((anchor - x) / (t_anchor - t) - u(x, t)): a velocity field pulled with strength s_i (one per
    step of the pass) toward the straight line that reaches ``anchor`` at ``t_anchor``. s_i = 0 returns u itself."""

    def __init__(self, velocity, anchor: torch.Tensor, t_anchor: float, strengths: list[float]):
        self.velocity = velocity
        self.anchor = anchor
        self.t_anchor = t_anchor
        self.strengths = strengths
        self.index = 0

    def begin_step(self, index: int, t: float, t_next: float) -> None:
        self.index = index
        self.velocity.begin_step(index, t, t_next)

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        u = self.velocity(x, t)
        strength = self.strengths[self.index]
        if strength == 0:
            return u
        return u + strength * ((self.anchor - x) / (self.t_anchor - t) - u)


def eta_window(steps: int, eta: float, start: float, stop: float) -> list[float]:
    """eta on the denoising steps int(start N) <= i < min(int(stop N), N), 0 elsewhere (the community pipeline's rule)."""
    first, last = int(start * steps), min(int(stop * steps), steps)
    return [eta if first <= i < last else 0.0 for i in range(steps)]


def rf_inversion_edit(pipe, image, source_prompt: str, target_prompt: str, steps: int = 28, gamma: float = 0.5,
                      eta: float = 1.0, start: float = 0.0, stop: float = 0.25, guidance: Guidance = "auto", *,
                      source_guidance: Guidance = "auto", empty_inversion_prompt: bool = True, seed: int = 0,
                      progress: bool = True) -> EditResult:
    """Edit ``image`` from ``source_prompt`` to ``target_prompt`` with RF-Inversion's controlled ODEs.

    Args:
        steps: Euler steps of each pass (2 x steps NFE).
        gamma: the inversion's pull toward the noise sample y_1 (0: plain Euler inversion; 1: straight to y_1).
        eta, start, stop: the edit's pull toward the source latents and the window of steps, as fractions of the
            steps from the noise end, where it acts (0 <= start <= stop <= 1).
        guidance: guidance while editing; "auto" is what the method's authors used on this family (FLUX.1-dev 3.5).
        source_guidance: guidance while inverting; "auto": FLUX.1-dev 0 (the community pipeline's), SD3 none.
        empty_inversion_prompt: invert with the empty prompt, as the reference does (True), or with ``source_prompt``.
        seed: draws y_1.

    Returns an :class:`~fireflow_edu.editing.passes.EditResult` whose ``nfe`` is 2 x steps.
    """
    check_steps(steps)
    gamma, eta = check_fraction("gamma", gamma), check_fraction("eta", eta)
    start, stop = check_fraction("start", start), check_fraction("stop", stop)
    if start > stop:
        raise ValueError(f"start ({start}) must not be after stop ({stop}): both are fractions of the steps from "
                         "the noise end")
    adapter = model_adapter(pipe)
    defaults = adapter.method_defaults("rf_inversion")
    source_guidance = adapter.resolve_guidance(defaults["source_guidance"] if source_guidance == "auto"
                                               else source_guidance, "invert", steps)
    guidance = adapter.resolve_guidance(defaults["guidance"] if guidance == "auto" else guidance, "edit", steps)
    passes = Passes(adapter, "euler", progress, Clock(adapter.device))
    pixels, latents = passes.prepare(image)
    noise = adapter.noise(*pixels.shape[:2], seed).to(latents.dtype)
    inversion_prompt = "" if empty_inversion_prompt else source_prompt
    inversion = passes.invert(pixels, latents, inversion_prompt, steps, source_guidance,
                              control=lambda u: ControlledVelocity(u, noise, 1.0, [gamma] * steps))
    strengths = eta_window(steps, eta, start, stop)
    denoised, out, branches = passes.denoise(inversion, target_prompt, guidance,
                                             control=lambda v: ControlledVelocity(v, latents, 0.0, strengths))
    settings = {"algorithm": "rf_inversion", "source_prompt": source_prompt, "target_prompt": target_prompt,
                "inversion_prompt": inversion_prompt, "steps": steps, "method": "euler", "gamma": gamma, "eta": eta,
                "start": start, "stop": stop, "controlled_steps": sum(s > 0 for s in strengths),
                "inversion_guidance": source_guidance, "guidance": guidance, "seed": seed}
    return edit_result(inversion, denoised, out, branches, passes.clock.seconds, settings)
