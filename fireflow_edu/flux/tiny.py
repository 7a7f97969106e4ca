"""A tiny random-weight FluxPipeline built entirely offline, for CI and CPU experiments.

Every component is the real diffusers / transformers class at a toy size: FluxTransformer2DModel (with
guidance embedding, like FLUX.1-dev) and FLUX's flow-matching scheduler here, on the shared offline text
side and 8x AutoencoderKL of :mod:`fireflow_edu.editing.tiny`. ``tiny_pipeline`` saves the pipeline and loads
it back through :func:`fireflow_edu.editing.loading.load_pipeline`, so the real loading path runs too.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..editing.tiny import VOCABULARY, build_text_side, saved_and_loaded, tiny_vae

TEXT_DIM = 32


def flux_pipeline_class():
    """diffusers' FluxPipeline, imported without the notes about torchvision."""
    from ..editing.loading import quiet_loading

    with quiet_loading():
        from diffusers import FluxPipeline
    return FluxPipeline


def flux_scheduler():
    """FLUX.1-dev's flow-matching scheduler settings (resolution-dependent shift)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                           base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                           max_image_seq_len=4096)


def build_tiny_pipeline(seed: int = 0):
    """Construct the tiny FluxPipeline in memory with seeded random weights (fp32, CPU)."""
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(seed)
    text_side = build_text_side(VOCABULARY, TEXT_DIM, t5_length=32)
    vae = tiny_vae()
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4 * vae.config.latent_channels, num_layers=1, num_single_layers=3,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=TEXT_DIM,
        pooled_projection_dim=TEXT_DIM, guidance_embeds=True, axes_dims_rope=(4, 6, 6))
    return flux_pipeline_class()(scheduler=flux_scheduler(), vae=vae, transformer=transformer, **text_side)


def tiny_pipeline(seed: int = 0, path: str | Path | None = None):
    """The tiny pipeline, saved with ``save_pretrained`` and loaded back with ``load_pipeline`` (the real loading
    path); ``path``: where to save it (a temporary folder by default, removed after loading)."""
    return saved_and_loaded(build_tiny_pipeline(seed), path)
