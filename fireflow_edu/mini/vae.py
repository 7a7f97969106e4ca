"""An exactly invertible stand-in for FLUX's VAE: pixel (un)shuffle, loadable by FluxPipeline.

``encode`` folds each ``factor x factor`` block of RGB pixels into channels
([B, 3, H, W] -> [B, 3 f^2, H/f, W/f]) and ``decode`` unfolds it, so a latent is just
the image rearranged: reconstruction errors measure the solver and the model, never
an autoencoder. It offers what FluxPipeline and this package use of a VAE
(``encode(x).latent_dist.mode()``, ``decode(z, return_dict=False)``, ``config.block_out_channels``
for the scale factor, ``shift_factor``, ``scaling_factor``) and saves/loads with
``save_pretrained`` / ``from_pretrained`` like any diffusers model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin


class PixelShuffleVAE(ModelMixin, ConfigMixin):
    """Lossless ``factor``x downsampling by pixel unshuffle (factor 2: 32x32 RGB -> 16x16x12)."""

    @register_to_config
    def __init__(self, factor: int = 2, in_channels: int = 3, scaling_factor: float = 1.0, shift_factor: float = 0.0,
                 block_out_channels: list[int] | None = None, latent_channels: int | None = None):
        super().__init__()
        if factor < 1 or factor & (factor - 1):
            raise ValueError(f"factor must be a power of two, got {factor}")
        # FluxPipeline reads its scale factor as 2 ** (len(block_out_channels) - 1)
        self.register_to_config(block_out_channels=[in_channels] * factor.bit_length(),
                                latent_channels=in_channels * factor * factor)
        # ModelMixin infers device and dtype from parameters; this one is never trained.
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        latent = F.pixel_unshuffle(x, self.config.factor)
        # a point mass: deterministic, so mode() and sample() both return the latent exactly
        posterior = DiagonalGaussianDistribution(torch.cat([latent, torch.zeros_like(latent)], 1), deterministic=True)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def decode(self, z: torch.Tensor, return_dict: bool = True, generator=None):
        image = F.pixel_shuffle(z, self.config.factor)
        return DecoderOutput(sample=image) if return_dict else (image,)
