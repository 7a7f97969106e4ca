"""FLUX's latent layout: VAE latents packed into 2x2 patches (tokens) and back, and their position ids."""

from __future__ import annotations

import numpy as np
import torch

from ..editing.images import vae_decode, vae_decode_float, vae_encode
from .known_inputs import warn_if_unknown_size


def size_multiple(pipe) -> int:
    return 2 * pipe.vae_scale_factor


def encode_image(pipe, pixels: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> FLUX's packed latents [1, (H/16)(W/16), 4 * latent channels] (float32)."""
    warn_if_unknown_size(pipe, *pixels.shape[:2])
    latent = vae_encode(pipe, pixels)
    _, c, h, w = latent.shape
    return pipe._pack_latents(latent, 1, c, h, w)


def decode_latents(pipe, packed: torch.Tensor, height: int, width: int) -> np.ndarray:
    """FLUX's packed latents -> uint8 [H, W, 3]."""
    return vae_decode(pipe, pipe._unpack_latents(packed, height, width, pipe.vae_scale_factor))


def decode_latents_float(pipe, packed: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """FLUX's packed latents -> [1, 3, H, W] float32, about [-1, 1] (unclamped), differentiable."""
    return vae_decode_float(pipe, pipe._unpack_latents(packed, height, width, pipe.vae_scale_factor))


def latent_image_ids(pipe, height: int, width: int) -> torch.Tensor:
    """Position ids [L, 3] of the packed latent tokens for a height x width image."""
    tokens_h = height // size_multiple(pipe)
    tokens_w = width // size_multiple(pipe)
    return pipe._prepare_latent_image_ids(1, tokens_h, tokens_w, pipe._execution_device, pipe.transformer.dtype)
