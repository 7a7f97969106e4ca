"""Reconstruction metrics on uint8 RGB images [H, W, 3]: the paper's RMSE (0-255), PSNR, SSIM, LPIPS."""

from __future__ import annotations

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
    a, b = _pair(a, b)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio in dB for 0-255 images (inf when identical)."""
    error = rmse_255(a, b)
    return float("inf") if error == 0 else float(20 * np.log10(255.0 / error))


def ssim(a, b) -> float:
    """Structural similarity (scikit-image, RGB channels, data range 255)."""
    from skimage.metrics import structural_similarity

    a, b = _pair(a, b)
    return float(structural_similarity(a, b, channel_axis=2, data_range=255.0))


def lpips_distance(a, b) -> float | None:
    """LPIPS (AlexNet) when the ``lpips`` package and its weights are present locally; else None, with a message.

    Nothing is downloaded: the weights must already be in the torch hub cache.
    """
    import torch

    weights = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS
    try:
        import lpips
    except ImportError:
        print("LPIPS skipped: the lpips package is not installed (pip install lpips)")
        return None
    if not weights.exists():
        print(f"LPIPS skipped: AlexNet weights not found at {weights} (nothing is downloaded here)")
        return None
    model = lpips.LPIPS(net="alex", verbose=False)
    a, b = _pair(a, b)
    to_tensor = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        return float(model(to_tensor(a), to_tensor(b)))


def reconstruction_metrics(source, result) -> dict:
    """RMSE (0-255), PSNR and SSIM of ``result`` against ``source``."""
    return {"rmse_255": rmse_255(source, result), "psnr": psnr(source, result), "ssim": ssim(source, result)}
