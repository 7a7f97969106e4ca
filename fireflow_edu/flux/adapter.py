"""FLUX's side of the model boundary (:mod:`fireflow_edu.editing.boundary`): packed latents, FLUX's schedule,
distilled guidance through the guidance embedding, features in the single-stream blocks."""

from __future__ import annotations

import numpy as np
import torch

from ..editing.boundary import Guidance, pipeline_schedule
from ..editing.features import feature_hooks, resolve_blocks
from .latents import decode_latents, decode_latents_float, encode_image, latent_image_ids, size_multiple
from .velocity import FluxVelocity, encode_prompt, per_step_guidance, resolve_guidance

# what "auto" means on a guidance-distilled FLUX: faithful inversion at 1, the reference's edits at 2, and
# generation at 2 as well (FluxPipeline's 3.5 is one argument away), so generated images and their edits share a flow
AUTO_GUIDANCE = {"invert": 1.0, "edit": 2.0, "generate": 2.0}
# what the other editing methods' authors ran on FLUX.1-dev: RF-Inversion as diffusers' community pipeline
# (examples/community/pipeline_flux_rf_inversion.py: the empty prompt inverted at guidance 0, edits at 3.5),
# FlowEdit as its repository's FLUX_exp.yaml
METHOD_DEFAULTS = {
    "rf_inversion": {"source_guidance": 0.0, "guidance": 3.5},
    "flowedit": {"steps": 28, "n_max": 24, "source_guidance": 1.5, "guidance": 5.5},
}


TIMESTEP_DISTILLED = ("this FLUX looks timestep-distilled like FLUX.1-schnell (no guidance embedding, no schedule "
                      "shift): it was trained to jump from noise to an image in a few steps, not to follow a flow "
                      "ODE that a reverse pass can retrace, so inversion and edits are unreliable on it (FireFlow's "
                      "authors report the same). Use FLUX.1-dev for inversion and editing.")


class FluxAdapter:
    family = "flux"

    def __init__(self, pipe):
        self.pipe = pipe
        self.size_multiple = size_multiple(pipe)
        self.mask_cell = pipe.vae_scale_factor  # one latent pixel: a token packs 2x2 of them, masked one by one
        self.device = pipe._execution_device
        config = pipe.scheduler.config
        distilled = (not pipe.transformer.config.guidance_embeds and not config.get("use_dynamic_shifting")
                     and config.get("shift", 1.0) == 1.0)
        self.inversion_warning = TIMESTEP_DISTILLED if distilled else None

    def encode_image(self, pixels) -> torch.Tensor:
        return encode_image(self.pipe, pixels)

    def decode(self, latents: torch.Tensor, height: int, width: int):
        return decode_latents(self.pipe, latents, height, width)

    def decode_float(self, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return decode_latents_float(self.pipe, latents, height, width)

    def noise(self, height: int, width: int, seed: int) -> torch.Tensor:
        tokens = (height // self.size_multiple) * (width // self.size_multiple)
        shape = (1, tokens, self.pipe.transformer.config.in_channels)
        return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(self.device)

    def encode_prompt(self, prompt: str):
        return encode_prompt(self.pipe, prompt)

    def schedule(self, steps: int, latents: torch.Tensor) -> torch.Tensor:
        """FluxPipeline's grid (its scheduler's ``set_timesteps`` on linspace(1, 1/N, N)); equal to the
        teaching formula :func:`~fireflow_edu.schedules.flux_schedule` (tested)."""
        flow_sigmas = self.pipe.scheduler.config.get("use_flow_sigmas")
        sigmas = None if flow_sigmas else np.linspace(1.0, 1 / steps, steps)
        return pipeline_schedule(self.pipe.scheduler, steps, latents.shape[1], sigmas)

    def resolve_guidance(self, guidance: Guidance, role: str, steps: int):
        embedded = self.pipe.transformer.config.guidance_embeds
        resolved = resolve_guidance(guidance, embedded, AUTO_GUIDANCE[role])
        per_step_guidance(resolved, steps, embedded)  # a per-step list must have one value per step
        return resolved

    def method_defaults(self, method: str) -> dict:
        """The settings ``method``'s authors used on FLUX.1-dev; guidance "auto" on a model without the embedding."""
        embedded = self.pipe.transformer.config.guidance_embeds
        return {key: value if embedded or not key.endswith("guidance") else "auto"
                for key, value in METHOD_DEFAULTS[method].items()}

    def latent_mask(self, cells) -> torch.Tensor:
        """Boolean [1, L, 4C] over the packed latents from latent-pixel cells [h, w], packed as the latents are, so
        each of a token's 2x2 latent pixels is kept or edited on its own."""
        channels = self.pipe.transformer.config.in_channels // 4
        h, w = cells.shape
        grid = torch.from_numpy(np.ascontiguousarray(cells)).float()[None, None].expand(1, channels, h, w)
        return (self.pipe._pack_latents(grid, 1, channels, h, w) > 0.5).to(self.device)

    def branches(self, guidance) -> int:
        """Transformer branches per evaluation: always 1 (distilled guidance is an input, not a second branch)."""
        return 1

    def velocity(self, conditioning, height: int, width: int, timesteps: torch.Tensor, guidance, features=None):
        return FluxVelocity(self.pipe.transformer, conditioning, latent_image_ids(self.pipe, height, width),
                            timesteps, guidance, features)

    def resolve_blocks(self, blocks):
        return resolve_blocks(blocks, len(self.pipe.transformer.single_transformer_blocks))

    def feature_hooks(self, features):
        return single_block_hooks(self.pipe.transformer, features)


def single_block_hooks(transformer, features):
    """:func:`~fireflow_edu.editing.features.feature_hooks` on the chosen single-stream blocks of a
    FluxTransformer2DModel: Q and K after QK-norm, V, over the full sequence (text + image tokens)."""
    blocks = transformer.single_transformer_blocks
    return feature_hooks({block: blocks[block].attn for block in features.blocks}, features)
