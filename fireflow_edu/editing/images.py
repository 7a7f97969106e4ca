"""Image in, image out, for every family: reading and validating images, the crop rule, VAE latents.

Size rule: a model needs height and width divisible by its adapter's ``size_multiple`` (FLUX and SD3: 16,
8x VAE downsampling then 2x2 patches). An image that is not is centre-cropped to the largest such size (at
most 15 pixels lost per side pair at 16); an image smaller than one multiple in either direction is an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

SKIMAGE_SAMPLES = ("chelsea", "astronaut", "coffee")


def load_image(spec: str):
    """A file path, or ``skimage:NAME`` for a scikit-image sample (chelsea, astronaut, coffee)."""
    if spec.startswith("skimage:"):
        from skimage import data

        name = spec.split(":", 1)[1]
        if name not in SKIMAGE_SAMPLES:
            raise ValueError(f"unknown scikit-image sample {name!r}; use one of {', '.join(SKIMAGE_SAMPLES)}")
        return getattr(data, name)()
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"image {spec!r} not found (give a file path or skimage:chelsea)")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError) as error:  # PIL's UnidentifiedImageError is an OSError
        raise ValueError(f"{spec!r} is not an image PIL can read (PNG, JPEG, ...): {error}") from error


def to_pixels(image) -> np.ndarray:
    """A PIL image (converted to RGB) or an [H, W, 3] array (uint8 0-255, or float 0-1) -> uint8 [H, W, 3]."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"image must be a PIL image or an [H, W, 3] RGB array, got shape {array.shape}")
    if array.size == 0:
        raise ValueError("image is empty")
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        if array.min() < 0 or array.max() > 1:
            raise ValueError(f"float images must lie in [0, 1], got [{array.min():.3g}, {array.max():.3g}]")
        return np.round(array * 255).astype(np.uint8)
    raise ValueError(f"image arrays must be uint8 (0-255) or float (0-1), got {array.dtype}")


def crop_to_multiple(pixels: np.ndarray, multiple: int) -> np.ndarray:
    """Centre-crop [H, W, 3] to the largest height and width divisible by ``multiple``."""
    h, w = pixels.shape[:2]
    if h < multiple or w < multiple:
        raise ValueError(f"image is {w}x{h} pixels; this model needs at least {multiple}x{multiple}")
    new_h, new_w = h - h % multiple, w - w % multiple
    top, left = (h - new_h) // 2, (w - new_w) // 2
    return pixels[top:top + new_h, left:left + new_w]


def scaled_latents(vae, x: torch.Tensor) -> torch.Tensor:
    """Pixels [B, 3, H, W] in [-1, 1] -> the posterior mode, shifted and scaled as FLUX and SD3 expect (float32)."""
    latent = vae.encode(x.to(vae.device, vae.dtype)).latent_dist.mode()
    return ((latent - vae.config.shift_factor) * vae.config.scaling_factor).float()


@torch.no_grad()
def vae_encode(pipe, pixels: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> scaled VAE latents [1, C, H/8, W/8] (float32), posterior mode (FLUX and SD3 alike);
    the pixels go through the pipeline's own ``image_processor`` (to [-1, 1]), as its img2img pipelines do."""
    return scaled_latents(pipe.vae, pipe.image_processor.preprocess(Image.fromarray(pixels)))


def vae_decode_float(pipe, latent: torch.Tensor) -> torch.Tensor:
    """Scaled VAE latents [1, C, h, w] -> the decoder's image [1, 3, H, W], float32, about [-1, 1] (unclamped); differentiable in
    the latents (a masked edit's background fit)."""
    vae = pipe.vae
    latent = latent / vae.config.scaling_factor + vae.config.shift_factor
    return vae.decode(latent.to(vae.dtype), return_dict=False)[0].float()


@torch.no_grad()
def vae_decode(pipe, latent: torch.Tensor) -> np.ndarray:
    """Scaled VAE latents [1, C, h, w] -> uint8 [H, W, 3]."""
    return np.asarray(pipe.image_processor.postprocess(vae_decode_float(pipe, latent), output_type="pil")[0])
