"""A tiny random-weight StableDiffusion3Pipeline built entirely offline, for CI and CPU experiments.

The real diffusers / transformers classes at toy sizes: SD3Transformer2DModel (2 joint blocks), two
CLIPTextModelWithProjection encoders and a T5EncoderModel from the shared offline text side of
:mod:`fireflow_edu.editing.tiny`, its AutoencoderKL (8x), and SD3's flow-matching scheduler (static shift 3). ``tiny_sd3_pipeline`` saves it and loads
it back through :func:`fireflow_edu.editing.loading.load_pipeline`, so the real loading path runs too.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..editing.tiny import VOCABULARY, clip_text_encoder, saved_and_loaded, t5_text_encoder, tiny_vae, word_tokenizer

CLIP_DIM, T5_DIM = 16, 32


def build_tiny_sd3_pipeline(seed: int = 0):
    """Construct the tiny StableDiffusion3Pipeline in memory with seeded random weights (fp32, CPU)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    torch.manual_seed(seed)
    tokenizers = [word_tokenizer(VOCABULARY, 77), word_tokenizer(VOCABULARY, 77), word_tokenizer(VOCABULARY, 32)]
    t5 = t5_text_encoder(tokenizers[2], T5_DIM)
    vae = tiny_vae()
    transformer = SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=vae.config.latent_channels, num_layers=2, attention_head_dim=8,
        num_attention_heads=2, joint_attention_dim=T5_DIM, caption_projection_dim=16,
        pooled_projection_dim=2 * CLIP_DIM, out_channels=vae.config.latent_channels, pos_embed_max_size=32)
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae,
        text_encoder=clip_text_encoder(tokenizers[0], CLIP_DIM, projection=True), tokenizer=tokenizers[0],
        text_encoder_2=clip_text_encoder(tokenizers[1], CLIP_DIM, projection=True), tokenizer_2=tokenizers[1],
        text_encoder_3=t5, tokenizer_3=tokenizers[2])


def tiny_sd3_pipeline(seed: int = 0, path: str | Path | None = None):
    """The tiny SD3 pipeline, saved with ``save_pretrained`` and loaded back with ``load_pipeline``."""
    return saved_and_loaded(build_tiny_sd3_pipeline(seed), path)
