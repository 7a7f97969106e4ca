"""The one adapter between the solvers and FLUX's transformer: time, guidance and step bookkeeping.

The package's time convention is FLUX's (t = 1 noise, t = 0 data) and diffusers'
FluxTransformer2DModel takes ``timestep = t`` (it multiplies by 1000 inside) and
``guidance`` as the raw scale, so no conversion of t is needed: this is the only
place where solver times meet the transformer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class PromptEmbedding:
    """FLUX text conditioning: T5 tokens [B, S, D], pooled CLIP [B, P], text position ids [S, 3]."""

    prompt_embeds: torch.Tensor
    pooled: torch.Tensor
    text_ids: torch.Tensor


def encode_prompt(pipe, prompt: str, max_sequence_length: int | None = None) -> PromptEmbedding:
    """Encode ``prompt`` with the pipeline's CLIP and T5 encoders."""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    limit = min(512, pipe.tokenizer_2.model_max_length)
    with torch.no_grad():
        embeds, pooled, text_ids = pipe.encode_prompt(prompt, prompt_2=None, device=pipe._execution_device,
                                                      max_sequence_length=max_sequence_length or limit)
    return PromptEmbedding(embeds, pooled, text_ids)


class GridLocator:
    """Maps a time the solver asks about to (step index of this pass, stage).

    Solvers evaluate at grid points (stage "start") and at half steps (stage "mid"),
    computed from the same floats, so both are found exactly. ``interval`` numbers
    steps along the sampling direction (0 = the step nearest the noise) so that an
    inversion step and the denoising step over the same interval share a number.
    """

    def __init__(self, timesteps: torch.Tensor):
        self.times = timesteps.tolist()
        self.decreasing = self.times[1] < self.times[0]

    @property
    def num_steps(self) -> int:
        return len(self.times) - 1

    def locate(self, t: float) -> tuple[int, str]:
        for i, (a, b) in enumerate(zip(self.times[:-1], self.times[1:])):
            if t == a:
                return i, "start"
            if min(a, b) < t < max(a, b):
                return i, "mid"
        raise ValueError(f"time {t} is not on this pass's grid {self.times}")

    def interval(self, step: int) -> int:
        return step if self.decreasing else self.num_steps - 1 - step


def per_step_guidance(guidance: float | Sequence[float] | None, num_steps: int, embedded: bool) -> list[float] | None:
    """One guidance value per step, or None for models without a guidance embedding (FLUX.1-schnell)."""
    if not embedded:
        if guidance is not None:
            raise ValueError("this transformer has no guidance embedding (like FLUX.1-schnell): pass guidance=None")
        return None
    if guidance is None:
        raise ValueError("this transformer is guidance-distilled (like FLUX.1-dev): pass a guidance scale, e.g. 1.0")
    if isinstance(guidance, (int, float)):
        return [float(guidance)] * num_steps
    values = [float(g) for g in guidance]
    if len(values) != num_steps:
        raise ValueError(f"guidance list has {len(values)} values for a pass of {num_steps} steps; "
                         "give one value per step or a single number")
    return values


class FluxVelocity:
    """v(x, t) for packed FLUX latents x [B, L, C] along one solver pass.

    Args:
        transformer: a FluxTransformer2DModel.
        prompt: the text conditioning.
        img_ids: latent position ids [L, 3].
        timesteps: the grid this pass integrates (to find each call's step and stage).
        guidance: FLUX guidance scale, a number or one value per step of this pass
            (e.g. [1, 2, 2, ...]); only for transformers with ``guidance_embeds``.
        features: an :class:`~fireflow_edu.flux.attention.AttentionFeatures` to tell
            which (interval, stage) each call belongs to, or None.

    The solver state may be float32 while the transformer runs in bfloat16: inputs are
    cast to the transformer's dtype and velocities back to the state's dtype.
    """

    def __init__(self, transformer, prompt: PromptEmbedding, img_ids: torch.Tensor, timesteps: torch.Tensor,
                 guidance: float | Sequence[float] | None = 1.0, features=None):
        self.transformer = transformer
        self.prompt = prompt
        self.img_ids = img_ids
        self.grid = GridLocator(timesteps)
        self.features = features
        self.guidance = per_step_guidance(guidance, self.grid.num_steps, transformer.config.guidance_embeds)

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        step, stage = self.grid.locate(float(t))
        if self.features is not None:
            self.features.at(self.grid.interval(step), stage)
        model_dtype = self.transformer.dtype
        batch = x.shape[0]
        timestep = torch.full((batch,), float(t), device=x.device, dtype=model_dtype)
        guidance = None
        if self.guidance is not None:
            guidance = torch.full((batch,), self.guidance[step], device=x.device, dtype=torch.float32)
        with torch.no_grad():
            v = self.transformer(
                hidden_states=x.to(model_dtype), timestep=timestep, guidance=guidance,
                pooled_projections=self.prompt.pooled, encoder_hidden_states=self.prompt.prompt_embeds,
                txt_ids=self.prompt.text_ids, img_ids=self.img_ids, return_dict=False,
            )[0]
        return v.to(x.dtype)
