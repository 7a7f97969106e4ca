"""FlowEdit (Kulikov et al., "FlowEdit: Inversion-Free Text-Based Editing Using Pre-Trained Flow Models", 2024,
arXiv 2412.08629) on any model family, through the same boundary, clock and results as FireFlow's recipe.

No inversion. The edit is an ODE on the image itself, started at the clean source latents x_src part-way along the
grid t_0 = 1 > ... > t_N = 0 (the ``N - n_max`` noisiest steps are skipped, ``n_max`` steps run):

    z(t_{N - n_max}) = x_src,
    dz/dt = E_e[ v(z + z_src - x_src, t | target) - v(z_src, t | source) ],   z_src = (1 - t) x_src + t e,  e ~ N(0, I),

integrated with Euler steps, the expectation estimated by ``n_avg`` fresh noise draws at each step. z_src is the
source image noised to time t; z + z_src - x_src is the same noise on the edited image, so the difference of the
two velocities moves z only where the prompts disagree: with the same prompt and guidance on both sides it is
exactly zero and z stays x_src bit for bit. Each draw costs two model calls, so an edit costs 2 n_avg n_max NFE.
With ``n_min`` > 0 the last n_min steps turn into plain sampling of the target from z_tar = z + z_src - x_src,
one call each (NFE 2 n_avg (n_max - n_min) + n_min).

Defaults follow the authors' configurations, per family (``adapter.method_defaults("flowedit")``): FLUX.1-dev 28
steps, n_max 24, guidance 1.5 (source) / 5.5 (target); SD3 50 steps, n_max 33, classifier-free guidance 3.5 / 13.5.
"""

from __future__ import annotations

import torch
from PIL import Image

from ..solvers import integrate
from ..timing import Clock
from .boundary import Guidance, model_adapter
from .passes import EditResult, Passes, check_steps


class FlowEditVelocity:
    """dz/dt = mean over ``n_avg`` noise draws e of v_target(z + z_src - x_src, t) - v_source(z_src, t),
    z_src = (1 - t) x_src + t e; e drawn fresh at every evaluation from ``generator``."""

    def __init__(self, source, target, x_src: torch.Tensor, n_avg: int, generator: torch.Generator):
        self.source, self.target = source, target
        self.x_src = x_src
        self.n_avg = n_avg
        self.generator = generator

    def begin_step(self, index: int, t: float, t_next: float) -> None:
        self.source.begin_step(index, t, t_next)
        self.target.begin_step(index, t, t_next)

    def noised_source(self, t: float) -> torch.Tensor:
        noise = torch.randn(self.x_src.shape, generator=self.generator).to(self.x_src.device, self.x_src.dtype)
        return (1 - t) * self.x_src + t * noise

    def __call__(self, z: torch.Tensor, t: float) -> torch.Tensor:
        total = torch.zeros_like(z)
        for _ in range(self.n_avg):
            z_src = self.noised_source(t)
            # z_src + (z - x_src), not z + z_src - x_src: at z = x_src it is z_src bit for bit
            total += self.target(z_src + (z - self.x_src), t) - self.source(z_src, t)
        return total / self.n_avg


def _count(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    return value


def _single(name: str, guidance):
    if isinstance(guidance, (list, tuple)):
        raise ValueError(f"FlowEdit takes one {name} per pass, not one per step: give a number or 'auto'")
    return guidance


def flowedit(pipe, image, source_prompt: str, target_prompt: str, steps: int | None = None, n_max: int | None = None,
             n_avg: int = 1, *, n_min: int = 0, guidance: Guidance = "auto", source_guidance: Guidance = "auto",
             seed: int = 0, progress: bool = True) -> EditResult:
    """Edit ``image`` from ``source_prompt`` to ``target_prompt`` with FlowEdit (no inversion).

    Args:
        steps: the grid's steps (None: the authors' for the family, FLUX 28, SD3 50).
        n_max: steps that run, from the data end (None: FLUX 24, SD3 33); 1 <= n_max <= steps.
        n_avg: noise draws averaged per step (2 model calls each).
        n_min: the last n_min steps sample the target plainly (0 <= n_min < n_max).
        guidance, source_guidance: the target's and the source's guidance; "auto": the authors' (FLUX.1-dev 5.5
            and 1.5, SD3 13.5 and 3.5).
        seed: the noise draws.

    Returns an :class:`~fireflow_edu.editing.passes.EditResult` with ``nfe_inversion`` 0 and ``nfe`` =
    2 n_avg (n_max - n_min) + n_min.
    """
    adapter = model_adapter(pipe)
    defaults = adapter.method_defaults("flowedit")
    steps = defaults["steps"] if steps is None else steps
    check_steps(steps)
    n_max = _count("n_max", defaults["n_max"] if n_max is None else n_max, 1, steps)
    n_avg = _count("n_avg", n_avg, 1)
    n_min = _count("n_min", n_min, 0, n_max - 1)
    target_guidance = adapter.resolve_guidance(defaults["guidance"] if guidance == "auto"
                                               else _single("guidance", guidance), "edit", steps)
    source_guidance = adapter.resolve_guidance(defaults["source_guidance"] if source_guidance == "auto"
                                               else _single("source_guidance", source_guidance), "edit", steps)
    passes = Passes(adapter, "euler", progress, Clock(adapter.device))
    pixels, x_src = passes.prepare(image)
    size = pixels.shape[:2]
    grid = adapter.schedule(steps, x_src)
    coupled, sampled = grid[steps - n_max:steps - n_min + 1], grid[steps - n_min:]
    source, target = passes.conditioning(source_prompt), passes.conditioning(target_prompt)
    generator = torch.Generator().manual_seed(seed)
    with passes.clock.phase("edit"):
        field = FlowEditVelocity(adapter.velocity(source, *size, coupled, source_guidance),
                                 adapter.velocity(target, *size, coupled, target_guidance), x_src, n_avg, generator)
        result = integrate(field, x_src, coupled, "euler", progress=progress)
        z, draws = result.x, n_avg * result.nfe
        calls, branches = 2 * draws, draws * (adapter.branches(source_guidance) + adapter.branches(target_guidance))
        if n_min:
            start = field.noised_source(float(sampled[0])) + (z - x_src)
            result = integrate(adapter.velocity(target, *size, sampled, target_guidance), start, sampled, "euler",
                               progress=progress)
            z = result.x
            calls += result.nfe
            branches += result.nfe * adapter.branches(target_guidance)
    out = passes.decode(z, size)
    seconds = {**passes.clock.seconds, "total": sum(passes.clock.seconds.values())}
    settings = {"algorithm": "flowedit", "source_prompt": source_prompt, "target_prompt": target_prompt,
                "steps": steps, "n_max": n_max, "n_avg": n_avg, "n_min": n_min, "method": "euler",
                "source_guidance": source_guidance, "guidance": target_guidance, "seed": seed}
    return EditResult(image=Image.fromarray(out), source=Image.fromarray(pixels), nfe=calls, nfe_inversion=0,
                      nfe_denoising=calls, seconds=seconds, settings=settings, nfe_branches=branches)
