"""Reconstruction metrics on uint8 RGB images [H, W, 3]: the paper's RMSE (0-255), PSNR, SSIM, LPIPS."""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

# LPIPS backbone: torchvision builder and its weights file in torch hub's checkpoints folder
LPIPS_BACKBONES = {"alex": ("alexnet", "alexnet-owt-7be5be79.pth"), "squeeze": ("squeezenet1_1", "squeezenet1_1-b8a52dc0.pth"),
                   "vgg": ("vgg16", "vgg16-397923af.pth")}


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


PSNR_CAP = 100.0  # dB an identical pair (inf) counts as when PSNRs are averaged


def capped(db: float) -> float:
    """A PSNR fit for a mean: identical images (inf dB) count as ``PSNR_CAP``."""
    return min(db, PSNR_CAP)


def masked_psnr(source, result, mask) -> float:
    """PSNR over the pixels where ``mask`` [H, W] is False: the background an edit should leave alone."""
    keep = ~np.asarray(mask, dtype=bool)
    if not keep.any():
        raise ValueError("the mask covers the whole image: no background left to measure")
    source, result = _pair(source, result)
    return psnr(source[keep], result[keep])


def _batch(image: np.ndarray):
    """[1, 3, H, W] tensor of an [H, W, 3] array, values unchanged."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]


def ssim(a, b) -> float:
    """Structural similarity (Wang et al. 2004) of two 0-255 RGB images, as torchmetrics computes it: an 11x11
    Gaussian window (sigma 1.5), data range 255, averaged over pixels and channels.

    The package's one SSIM: reconstruction and edit tables use it, and PIE-Bench's ``ssim_unedit`` applies it to
    the masked images as its reference does (:func:`fireflow_edu.piebench.metrics.region_metrics`). Images need
    at least 11 pixels a side."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    a, b = _pair(a, b)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"SSIM's 11x11 window needs images of at least 11 pixels a side, got {a.shape[:2]}")
    return float(structural_similarity_index_measure(_batch(a), _batch(b), data_range=255.0))


@lru_cache(maxsize=None)
def lpips_model(net: str = "alex", device: str = "cpu"):
    """torchmetrics' LPIPS on ``net`` ("alex", "squeeze" or "vgg"), built once per (net, device).

    The one LPIPS of the package: :func:`lpips_distance` (AlexNet, as LPIPS is usually reported) and PIE-Bench's
    scorer (SqueezeNet, as its reference) both use it. Raises FileNotFoundError, saying what to fetch, when
    torchvision or the backbone's weights are not on this machine: nothing is downloaded.
    """
    import torch

    try:
        import torchvision  # noqa: F401  (torchmetrics builds the backbone with it)
    except ImportError:
        raise FileNotFoundError("LPIPS needs torchvision: pip install 'fireflow_edu[piebench]' (the torchvision build "
                                "matching your torch)")
    weights = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONES[net][1]
    if not weights.exists():
        raise FileNotFoundError(f"LPIPS ({net}) needs {weights}; fetch once online with python -c \"import "
                                f"torchvision; torchvision.models.{LPIPS_BACKBONES[net][0]}(weights='DEFAULT')\"")
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    return LearnedPerceptualImagePatchSimilarity(net_type=net).to(device).eval()


def lpips_distance(a, b, net: str = "alex") -> float | None:
    """LPIPS of two uint8 images (:func:`lpips_model`), or None with a warning when it cannot be computed here."""
    import torch

    try:
        model = lpips_model(net)
    except FileNotFoundError as error:
        warnings.warn(f"LPIPS skipped: {error}", stacklevel=2)
        return None
    a, b = _pair(a, b)
    with torch.no_grad():
        return float(model(_batch(a).float() / 127.5 - 1, _batch(b).float() / 127.5 - 1))


def reconstruction_metrics(source, result) -> dict:
    """RMSE (0-255), PSNR and SSIM of ``result`` against ``source``."""
    return {"rmse_255": rmse_255(source, result), "psnr": psnr(source, result), "ssim": ssim(source, result)}
