"""The one adapter between the solvers and FLUX's transformer: time, guidance and step bookkeeping.

The package's time convention is FLUX's (t = 1 noise, t = 0 data) and diffusers'
FluxTransformer2DModel takes ``timestep = t`` (it multiplies by 1000 inside) and
``guidance`` as the raw scale, so no conversion of t is needed: this is the only
place where solver times meet the transformer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

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


Guidance = Union[str, float, Sequence[float], None]


def resolve_guidance(guidance: Guidance, embedded: bool, default: float) -> float | Sequence[float] | None:
    """What ``guidance`` means for a transformer with (``embedded``) or without a guidance embedding.

    ``"auto"`` (every default in this package) is ``default`` for a guidance-distilled model
    (FLUX.1-dev) and None for a model without the embedding (FLUX.1-schnell, the mini FLUX),
    as diffusers decides from ``transformer.config.guidance_embeds``. A number or a per-step list is
    accepted only by a model that has the embedding.
    """
    if isinstance(guidance, str):
        if guidance != "auto":
            raise ValueError(f"guidance must be 'auto', a number or one number per step, got {guidance!r}")
        return default if embedded else None
    if embedded and guidance is None:
        raise ValueError("this transformer is guidance-distilled (like FLUX.1-dev): give a guidance scale "
                         "such as 1.0, or 'auto'")
    if not embedded and guidance is not None:
        raise ValueError(f"this transformer has no guidance embedding (like FLUX.1-schnell), so guidance {guidance} "
                         "cannot be applied: leave guidance='auto'")
    return guidance


def per_step_guidance(guidance: Guidance, num_steps: int, embedded: bool, default: float = 1.0) -> list[float] | None:
    """One guidance value per step (``"auto"``: ``default``), or None for a model without a guidance embedding."""
    guidance = resolve_guidance(guidance, embedded, default)
    if guidance is None:
        return None
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
        timesteps: the grid this pass integrates (its length sets the per-step guidance).
        guidance: FLUX guidance scale, a number or one value per step of this pass
            (e.g. [1, 2, 2, ...]), for transformers with ``guidance_embeds``; "auto" is 1.0 for
            those and no guidance for the others (:func:`resolve_guidance`).
        features: an :class:`~fireflow_edu.flux.attention.AttentionFeatures` that stores on an
            inversion pass (increasing grid) and injects on a denoising pass (decreasing grid), or None.

    :func:`~fireflow_edu.solvers.integrate` calls :meth:`begin_step` before each step; each call is
    then an evaluation at the step's start, at its midpoint, or (a measurement such as
    :func:`~fireflow_edu.analysis.reuse_error`) at its end, which is the next step's start. Features
    are keyed by the interval along the sampling direction, so an inversion step and the denoising
    step over the same interval meet. The solver state may be float32 while the transformer runs in
    bfloat16: inputs are cast to the transformer's dtype and velocities back to the state's dtype.
    """

    def __init__(self, transformer, prompt: PromptEmbedding, img_ids: torch.Tensor, timesteps: torch.Tensor,
                 guidance: Guidance = "auto", features=None):
        self.transformer = transformer
        self.prompt = prompt
        self.img_ids = img_ids
        self.num_steps = len(timesteps) - 1
        self.features = features
        self.guidance = per_step_guidance(guidance, self.num_steps, transformer.config.guidance_embeds)
        self.step: tuple[int, float, float] | None = None  # (index, t, t_next) of the current step

    def begin_step(self, index: int, t: float, t_next: float) -> None:
        self.step = (index, t, t_next)

    def _where(self, t: float) -> tuple[int, str]:
        if self.step is None:
            if self.features is not None or len(set(self.guidance or [])) > 1:
                raise ValueError("this FluxVelocity injects features or varies guidance per step, so it needs to "
                                 "know the step: drive it with fireflow_edu.solvers.integrate or solve")
            return 0, "start"
        index, start, end = self.step
        if t == start:
            return index, "start"
        if t == end:
            return min(index + 1, self.num_steps - 1), "start"
        return index, "mid"

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        step, stage = self._where(float(t))
        if self.features is not None:
            inverting = self.step is not None and self.step[2] > self.step[1]
            interval = self.num_steps - 1 - step if inverting else step
            self.features.at(interval, stage, "store" if inverting else "inject")
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
