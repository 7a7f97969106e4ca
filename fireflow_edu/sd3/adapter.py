"""Stable Diffusion 3 / 3.5's side of the model boundary (:mod:`fireflow_edu.editing.boundary`).

SD3's MMDiT (``SD3Transformer2DModel``) has no guidance embedding: guidance is real classifier-free
guidance, v = v_uncond + g (v_cond - v_uncond), with the empty prompt as the unconditional branch. Both
branches run in one batched transformer call, which this package counts as one NFE (one evaluation of the
ODE's right-hand side); ``EditResult.nfe_branches`` counts each branch. Inversion uses no guidance by default
(the conditional branch alone). A guided velocity is an ODE like any other and can be integrated backwards, but
guidance amplifies the velocity's change between steps, so the same steps leave a larger discretisation error
and a round trip drifts further from the source; without it inversion is more faithful, and FireFlow's authors
report guided inversion hurts reconstruction on MMDiT models.

Time: the package's t (1 noise, 0 data) is SD3's sigma; the transformer takes ``timestep = 1000 t``. Latents
are the VAE's [1, C, H/8, W/8] (no packing), scaled as the pipeline does. Editing features are the Q, K, V of
the *image* tokens in the joint-attention blocks (``transformer_blocks``), after QK-norm.
"""

from __future__ import annotations

import numpy as np
import torch

from ..editing.boundary import pipeline_schedule
from ..editing.features import StepAware
from ..editing.images import vae_decode, vae_decode_float, vae_encode

# classifier-free guidance "auto" means: none to invert, the reference's 2 to edit, diffusers' 7 to generate
AUTO_GUIDANCE = {"invert": None, "edit": 2.0, "generate": 7.0}
# the other editing methods on SD3: FlowEdit as its repository's SD3_exp.yaml; RF-Inversion has no SD3 reference
# (its authors and diffusers' pipeline use FLUX), so it inverts without guidance, as our inversions do, and edits
# at diffusers' own SD3 guidance
METHOD_DEFAULTS = {
    "rf_inversion": {"source_guidance": None, "guidance": 7.0},
    "flowedit": {"steps": 50, "n_max": 33, "source_guidance": 3.5, "guidance": 13.5},
}


class SD3Prompt:
    """SD3 text conditioning: conditional and unconditional (empty prompt) embeddings [1, S, D] and pooled [1, P]."""

    def __init__(self, embeds, negative_embeds, pooled, negative_pooled):
        self.embeds, self.negative_embeds = embeds, negative_embeds
        self.pooled, self.negative_pooled = pooled, negative_pooled


class SD3Velocity(StepAware):
    """v(x, t) for SD3 latents x [1, C, h, w]: one transformer call per evaluation, both CFG branches batched.

    ``guidance``: None (or <= 1, as diffusers decides) runs the conditional branch alone.
    """

    def __init__(self, transformer, prompt: SD3Prompt, timesteps: torch.Tensor, guidance: float | None,
                 features=None, num_train_timesteps: int = 1000):
        super().__init__(timesteps, features)
        self.transformer = transformer
        self.prompt = prompt
        self.cfg = guidance is not None and guidance > 1
        self.guidance = guidance
        self.scale = num_train_timesteps

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        self.locate(float(t))
        dtype = self.transformer.dtype
        p = self.prompt
        inputs, embeds, pooled = x, p.embeds, p.pooled
        if self.cfg:
            inputs = torch.cat([x, x])
            embeds, pooled = torch.cat([p.negative_embeds, p.embeds]), torch.cat([p.negative_pooled, p.pooled])
        # float32 as diffusers' SD3 pipeline passes it: in bf16, 1000 t rounds (964.29 -> 964), moving midpoints
        timestep = torch.full((inputs.shape[0],), float(t) * self.scale, device=x.device, dtype=torch.float32)
        with torch.no_grad():
            v = self.transformer(hidden_states=inputs.to(dtype), timestep=timestep, encoder_hidden_states=embeds,
                                 pooled_projections=pooled, return_dict=False)[0]
        if self.cfg:
            uncond, cond = v.chunk(2)
            v = uncond + self.guidance * (cond - uncond)
        return v.to(x.dtype)


class SD3Adapter:
    family = "sd3"
    inversion_warning = None

    def __init__(self, pipe):
        self.pipe = pipe
        self.size_multiple = pipe.vae_scale_factor * pipe.transformer.config.patch_size
        self.mask_cell = pipe.vae_scale_factor  # one latent pixel
        self.device = pipe._execution_device

    def encode_image(self, pixels) -> torch.Tensor:
        return vae_encode(self.pipe, pixels)

    def decode(self, latents: torch.Tensor, height: int, width: int):
        return vae_decode(self.pipe, latents)

    def decode_float(self, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return vae_decode_float(self.pipe, latents)

    def noise(self, height: int, width: int, seed: int) -> torch.Tensor:
        factor = self.pipe.vae_scale_factor
        shape = (1, self.pipe.transformer.config.in_channels, height // factor, width // factor)
        return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(self.device)

    def encode_prompt(self, prompt: str) -> SD3Prompt:
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
        limit = min(256, self.pipe.tokenizer_3.model_max_length)
        with torch.no_grad():
            embeds, negative, pooled, negative_pooled = self.pipe.encode_prompt(
                prompt, prompt_2=None, prompt_3=None, device=self.device, do_classifier_free_guidance=True,
                negative_prompt="", max_sequence_length=limit)
        return SD3Prompt(embeds, negative, pooled, negative_pooled)

    def schedule(self, steps: int, latents: torch.Tensor) -> torch.Tensor:
        """The pipeline's own ``set_timesteps`` (SD3: a static shift of 3)."""
        patch = self.pipe.transformer.config.patch_size
        return pipeline_schedule(self.pipe.scheduler, steps, (latents.shape[-2] // patch) * (latents.shape[-1] // patch))

    def resolve_guidance(self, guidance, role: str, steps: int):
        if isinstance(guidance, str):
            if guidance != "auto":
                raise ValueError(f"guidance must be 'auto' or a number, got {guidance!r}")
            return AUTO_GUIDANCE[role]
        if guidance is not None and not isinstance(guidance, (int, float)):
            raise ValueError("SD3 takes one classifier-free guidance scale per pass, not one per step: "
                             f"give a number or 'auto', got {guidance!r}")
        return None if guidance is None else float(guidance)

    def method_defaults(self, method: str) -> dict:
        """The settings ``method``'s authors used on SD3 (see METHOD_DEFAULTS)."""
        return dict(METHOD_DEFAULTS[method])

    def latent_mask(self, cells) -> torch.Tensor:
        """Boolean [1, 1, h, w] over the latent grid from cells [h, w]."""
        return torch.from_numpy(np.ascontiguousarray(cells))[None, None].to(self.device)

    def branches(self, guidance) -> int:
        """Transformer branches per evaluation: 2 with classifier-free guidance, else 1."""
        return 2 if guidance is not None and guidance > 1 else 1

    def velocity(self, conditioning, height: int, width: int, timesteps: torch.Tensor, guidance, features=None):
        return SD3Velocity(self.pipe.transformer, conditioning, timesteps, guidance, features,
                           self.pipe.scheduler.config.num_train_timesteps)

    def resolve_blocks(self, blocks):
        from ..editing.features import resolve_blocks

        return resolve_blocks(blocks, len(self.pipe.transformer.transformer_blocks), "SD3's joint")

    def feature_hooks(self, features):
        """Hooks on the joint blocks' image-token Q (after QK-norm), K (after QK-norm) and V projections."""
        from ..editing.features import feature_hooks

        blocks = self.pipe.transformer.transformer_blocks
        return feature_hooks({block: blocks[block].attn for block in features.blocks}, features)
