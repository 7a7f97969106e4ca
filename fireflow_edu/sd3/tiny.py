"""A tiny random-weight StableDiffusion3Pipeline built entirely offline, for CI and CPU experiments.

The real diffusers / transformers classes at toy sizes: SD3Transformer2DModel (2 joint blocks), two
CLIPTextModelWithProjection encoders and a T5EncoderModel with the word-level tokenizers of the tiny FLUX,
AutoencoderKL (8x) and SD3's flow-matching scheduler (static shift 3). ``tiny_sd3_pipeline`` saves it and loads
it back through :func:`fireflow_edu.editing.loading.load_pipeline`, so the real loading path runs too.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..editing.tiny import SPECIAL, VOCABULARY, saved_and_loaded, tiny_vae, word_tokenizer

CLIP_DIM, T5_DIM = 16, 32


def build_tiny_sd3_pipeline(seed: int = 0):
    """Construct the tiny StableDiffusion3Pipeline in memory with seeded random weights (fp32, CPU)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    vocab_size = len(SPECIAL) + len(VOCABULARY)
    tokenizers = [word_tokenizer(VOCABULARY, 77), word_tokenizer(VOCABULARY, 77), word_tokenizer(VOCABULARY, 32)]
    eos, pad = tokenizers[0].eos_token_id, tokenizers[0].pad_token_id

    def clip():
        return CLIPTextModelWithProjection(CLIPTextConfig(
            vocab_size=vocab_size, hidden_size=CLIP_DIM, intermediate_size=2 * CLIP_DIM, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77, projection_dim=CLIP_DIM, eos_token_id=eos,
            bos_token_id=eos, pad_token_id=pad))

    t5 = T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=T5_DIM, d_kv=T5_DIM // 4, d_ff=2 * T5_DIM,
                                 num_layers=2, num_heads=4, pad_token_id=pad, eos_token_id=eos,
                                 decoder_start_token_id=0))
    vae = tiny_vae()
    transformer = SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=vae.config.latent_channels, num_layers=2, attention_head_dim=8,
        num_attention_heads=2, joint_attention_dim=T5_DIM, caption_projection_dim=16,
        pooled_projection_dim=2 * CLIP_DIM, out_channels=vae.config.latent_channels, pos_embed_max_size=32)
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae,
        text_encoder=clip(), tokenizer=tokenizers[0], text_encoder_2=clip(), tokenizer_2=tokenizers[1],
        text_encoder_3=t5, tokenizer_3=tokenizers[2])


def tiny_sd3_pipeline(seed: int = 0, path: str | Path | None = None):
    """The tiny SD3 pipeline, saved with ``save_pretrained`` and loaded back with ``load_pipeline``."""
    return saved_and_loaded(build_tiny_sd3_pipeline(seed), path)
