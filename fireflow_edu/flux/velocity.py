"""The one adapter between the solvers and FLUX's transformer: time, guidance and step bookkeeping.

The package's time convention is FLUX's (t = 1 noise, t = 0 data) and diffusers'
FluxTransformer2DModel takes ``timestep = t`` (it multiplies by 1000 inside) and
``guidance`` as the raw scale, so no conversion of t is needed: this is the only
place where solver times meet FLUX's transformer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..editing.boundary import Guidance
from ..editing.features import StepAware
from ..solvers import integrate
from .known_inputs import check_prompt


@dataclass
class PromptEmbedding:
    """FLUX text conditioning: T5 tokens [B, S, D], pooled CLIP [B, P], text position ids [S, 3]."""

    prompt_embeds: torch.Tensor
    pooled: torch.Tensor
    text_ids: torch.Tensor


def encode_prompt(pipe, prompt: str, max_sequence_length: int | None = None) -> PromptEmbedding:
    """Encode ``prompt`` with the pipeline's CLIP and T5 encoders; a model that records a closed vocabulary
    (the mini FLUX) refuses words outside it (:func:`~fireflow_edu.flux.known_inputs.check_prompt`)."""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    check_prompt(pipe, prompt)
    limit = min(512, pipe.tokenizer_2.model_max_length)
    with torch.no_grad():
        embeds, pooled, text_ids = pipe.encode_prompt(prompt, prompt_2=None, device=pipe._execution_device,
                                                      max_sequence_length=max_sequence_length or limit)
    return PromptEmbedding(embeds, pooled, text_ids)


def resolve_guidance(guidance: Guidance, embedded: bool, default: float) -> float | Sequence[float] | None:
    """What ``guidance`` means for a transformer with (``embedded``) or without a guidance embedding.

    ``"auto"`` (every default in this package) is ``default`` for a guidance-distilled model
    (FLUX.1-dev, the mini FLUX) and None for a model without the embedding (FLUX.1-schnell),
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


class FluxVelocity(StepAware):
    """v(x, t) for packed FLUX latents x [B, L, C] along one solver pass.

    Args:
        transformer: a FluxTransformer2DModel.
        prompt: the text conditioning.
        img_ids: latent position ids [L, 3].
        timesteps: the grid this pass integrates (its length sets the per-step guidance).
        guidance: FLUX guidance scale, a number or one value per interval of the grid in denoising order
            (e.g. [1, 2, 2, ...]: 1 on the interval leaving the noise), for transformers with
            ``guidance_embeds``; "auto" is 1.0 for those and no guidance for the others
            (:func:`resolve_guidance`). An inversion pass reads the list from its end, so both passes apply
            the same value over the same interval and a round trip retraces one ODE.
        features: an :class:`~fireflow_edu.editing.features.AttentionFeatures` that stores on an
            inversion pass (increasing grid) and injects on a denoising pass (decreasing grid), or None.

    Step bookkeeping and feature keys: :class:`~fireflow_edu.editing.features.StepAware`. The solver state may
    be float32 while the transformer runs in bfloat16: inputs are cast to the transformer's dtype and
    velocities back to the state's dtype.
    """

    def __init__(self, transformer, prompt: PromptEmbedding, img_ids: torch.Tensor, timesteps: torch.Tensor,
                 guidance: Guidance = "auto", features=None):
        self.transformer = transformer
        self.prompt = prompt
        self.img_ids = img_ids
        self.guidance = per_step_guidance(guidance, len(timesteps) - 1, transformer.config.guidance_embeds)
        super().__init__(timesteps, features, varies_per_step=len(set(self.guidance or [])) > 1)

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        interval = self.locate(float(t))
        model_dtype = self.transformer.dtype
        batch = x.shape[0]
        timestep = torch.full((batch,), float(t), device=x.device, dtype=model_dtype)
        guidance = None
        if self.guidance is not None:
            guidance = torch.full((batch,), self.guidance[interval], device=x.device, dtype=torch.float32)
        with torch.no_grad():
            v = self.transformer(
                hidden_states=x.to(model_dtype), timestep=timestep, guidance=guidance,
                pooled_projections=self.prompt.pooled, encoder_hidden_states=self.prompt.prompt_embeds,
                txt_ids=self.prompt.text_ids, img_ids=self.img_ids, return_dict=False,
            )[0]
        return v.to(x.dtype)


def solve_pass(transformer, x: torch.Tensor, embedding, img_ids: torch.Tensor, timesteps: torch.Tensor,
               method: str, guidance, features=None, progress: bool = False):
    """One solver pass of FLUX's ODE over ``timesteps`` on packed latents ``x`` [1, L, C].

    An increasing grid inverts (``features`` store), a decreasing one denoises (``features`` inject).
    Returns the solver's SolveResult.
    """
    velocity = FluxVelocity(transformer, embedding, img_ids, timesteps, guidance, features)
    return integrate(velocity, x, timesteps, method, progress=progress)
