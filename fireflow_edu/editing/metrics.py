"""Reconstruction metrics on uint8 RGB images [H, W, 3]: the paper's RMSE (0-255), PSNR, SSIM, LPIPS."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a, b


def rmse_255(a, b) -> float:
    """sqrt(mean((a - b)^2)) over every RGB value in 0-255: the paper's Figures 4 and 7."""
    from skimage.metrics import mean_squared_error

    return float(np.sqrt(mean_squared_error(*_pair(a, b))))


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio in dB for 0-255 images (scikit-image's; inf when identical)."""
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _pair(a, b)
    return float("inf") if np.array_equal(a, b) else float(peak_signal_noise_ratio(a, b, data_range=255.0))


def masked_psnr(source, result, mask) -> float:
    """PSNR over the pixels where ``mask`` [H, W] is False: the background an edit should leave alone."""
    keep = ~np.asarray(mask, dtype=bool)
    if not keep.any():
        raise ValueError("the mask covers the whole image: no background left to measure")
    source, result = _pair(source, result)
    return psnr(source[keep], result[keep])


def ssim(a, b) -> float:
    """Structural similarity (scikit-image, RGB channels, data range 255)."""
    from skimage.metrics import structural_similarity

    a, b = _pair(a, b)
    return float(structural_similarity(a, b, channel_axis=2, data_range=255.0))


def lpips_distance(a, b) -> float | None:
    """LPIPS (AlexNet) when the ``lpips`` package and its weights are present locally; else None, with a warning.

    Nothing is downloaded: the weights must already be in the torch hub cache.
    """
    import torch

    weights = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS
    try:
        import lpips
    except ImportError:
        warnings.warn("LPIPS skipped: the lpips package is not installed (pip install lpips)", stacklevel=2)
        return None
    if not weights.exists():
        warnings.warn(f"LPIPS skipped: AlexNet weights not found at {weights} (nothing is downloaded here)",
                      stacklevel=2)
        return None
    model = lpips.LPIPS(net="alex", verbose=False)
    a, b = _pair(a, b)
    to_tensor = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        return float(model(to_tensor(a), to_tensor(b)))


def reconstruction_metrics(source, result) -> dict:
    """RMSE (0-255), PSNR and SSIM of ``result`` against ``source``."""
    return {"rmse_255": rmse_255(source, result), "psnr": psnr(source, result), "ssim": ssim(source, result)}
