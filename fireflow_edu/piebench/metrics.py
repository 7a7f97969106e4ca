"""PIE-Bench's metrics with the published definitions (PnPInversion, ``evaluation/matrics_calculator.py``).

Images are [H, W, 3] uint8; ``mask`` [H, W] is 1 on the region meant to change. A region metric multiplies
*both* images by the region (zeros elsewhere) and scores the whole images, as the reference does, so PSNR and
MSE average over every pixel of the image, the zeroed ones included. With images scaled to [0, 1]:

- ``psnr_unedit``, ``mse_unedit``, ``ssim_unedit``: torchmetrics' PSNR (data range 1), MSE and SSIM (the
  package's :func:`fireflow_edu.editing.metrics.ssim`, the reference's Gaussian 11x11, sigma 1.5) of
  ``source * (1 - mask)`` against ``edited * (1 - mask)``;
- ``lpips_unedit``: the package's LPIPS (:func:`fireflow_edu.editing.metrics.lpips_model`, torchmetrics') on
  SqueezeNet, of the same, mapped to [-1, 1];
- ``clip_whole``: torchmetrics' CLIPScore (openai/clip-vit-large-patch14), 100 max(cos, 0), of the edited
  image and the target prompt; ``clip_edited``: the same on ``edited * mask``;
- ``structure_distance``: mean squared difference of the self-similarity (cosine) of DINO ViT-B/8's
  last-layer keys, whole images resized as the reference does (:func:`dino_resize`). The reference feeds 0-255 values to the ImageNet
  normalisation; kept, so the numbers compare.

Weights are read from local caches or paths only. A metric whose weights are absent is reported absent
(None), never as zero, and :class:`PieBenchScorer` says once what is missing and how to get it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

CLIP_MODEL = "openai/clip-vit-large-patch14"
DINO_REPO, DINO_MODEL, DINO_CHECKPOINT = "facebookresearch_dino_main", "dino_vitb8", "dino_vitbase8_pretrain.pth"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _masked(image: np.ndarray, region: np.ndarray) -> torch.Tensor:
    """[1, 3, H, W] float in [0, 1] of ``image * region``."""
    pixels = np.asarray(image, dtype=np.float32) / 255 * np.asarray(region, dtype=np.float32)[..., None]
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].contiguous()


def region_metrics(source, edited, mask) -> dict[str, float | None]:
    """PSNR, MSE and SSIM on the unedited region (``mask`` == 0); None when the mask covers everything."""
    from torchmetrics.functional import mean_squared_error
    from torchmetrics.functional.image import peak_signal_noise_ratio

    from ..editing.metrics import ssim

    keep = 1 - np.asarray(mask, dtype=np.float32)
    if keep.sum() == 0:  # the reference's "nan"
        return {"psnr_unedit": None, "mse_unedit": None, "ssim_unedit": None}
    a, b = _masked(source, keep), _masked(edited, keep)
    return {"psnr_unedit": float(peak_signal_noise_ratio(a, b, data_range=1.0)),
            "mse_unedit": float(mean_squared_error(a, b)),
            "ssim_unedit": ssim(*(np.asarray(image, np.float32) * keep[..., None] for image in (source, edited)))}


def dino_resize(pixels: torch.Tensor, size: int = 224, max_size: int = 480) -> torch.Tensor:
    """The reference's DINO input resize, torchvision's ``Resize(224, max_size=480)`` on a tensor [B, C, H, W].

    The shorter side becomes ``size`` and the longer keeps the aspect ratio (truncated), unless that makes it
    longer than ``max_size``: then the longer side is ``max_size`` and the shorter follows. Bilinear with
    antialiasing, as torchvision resizes tensors (512x512 -> 224x224; 512x1024 -> 224x448).
    """
    height, width = pixels.shape[-2:]
    short, long = sorted((height, width))
    new_short, new_long = size, int(size * long / short)
    if new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    shape = (new_short, new_long) if height <= width else (new_long, new_short)
    return torch.nn.functional.interpolate(pixels, size=shape, mode="bilinear", align_corners=False, antialias=True)


def keys_self_similarity(keys: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Cosine similarity [T, T] between the tokens of ``keys`` [T, D] (all heads concatenated)."""
    norms = keys.norm(dim=-1, keepdim=True)
    return (keys @ keys.T) / (norms @ norms.T).clamp(min=eps)


class PieBenchScorer:
    """Scores one edited image; ``absent`` maps each metric it cannot compute to the reason.

    Args:
        device: where the networks run.
        clip: a local CLIP ViT-L/14 folder (default: the Hugging Face cache entry of ``CLIP_MODEL``).
        dino: a local clone of facebookresearch/dino holding ``hubconf.py`` (default: torch hub's cache),
            with ``dino_vitbase8_pretrain.pth`` in torch hub's checkpoints folder.
    """

    def __init__(self, device: str | torch.device = "cpu", clip: str | Path | None = None,
                 dino: str | Path | None = None):
        self.device = torch.device(device)
        self.absent: dict[str, str] = {}
        self.lpips = self._load(("lpips_unedit",), self._lpips)
        self.clip = self._load(("clip_whole", "clip_edited"), lambda: self._clip(clip))
        self.dino = self._load(("structure_distance",), lambda: self._dino(dino))
        if self.absent:
            warnings.warn("PIE-Bench metrics reported absent (None), their weights are not here:\n"
                          + "\n".join(f"- {name}: {why}" for name, why in self.absent.items()), stacklevel=2)

    def _load(self, metrics: tuple[str, ...], build):
        """``build()``, or None with ``metrics`` recorded absent when its weights are missing."""
        try:
            return build()
        except FileNotFoundError as error:
            self.absent.update(dict.fromkeys(metrics, str(error)))
            return None

    def _lpips(self):
        from ..editing.metrics import lpips_model

        return lpips_model("squeeze", str(self.device))

    def _clip(self, path):
        if path is None:
            from huggingface_hub import snapshot_download

            try:
                path = snapshot_download(CLIP_MODEL, local_files_only=True)
            except Exception as error:  # huggingface_hub raises its own "not in cache" types
                raise FileNotFoundError(f"{CLIP_MODEL} is not in the Hugging Face cache ({type(error).__name__}); "
                                        f"fetch once online with `hf download {CLIP_MODEL}` or pass its folder")
        elif not Path(path).is_dir():
            raise FileNotFoundError(f"CLIP folder {path} not found")
        from torchmetrics.multimodal.clip_score import CLIPScore

        return CLIPScore(model_name_or_path=str(path)).to(self.device)

    def _dino(self, repo):
        hub = Path(torch.hub.get_dir())
        repo = Path(repo) if repo is not None else hub / DINO_REPO
        checkpoint = hub / "checkpoints" / DINO_CHECKPOINT
        if not (repo / "hubconf.py").exists() or not checkpoint.exists():
            raise FileNotFoundError(f"DINO ViT-B/8 needs its code at {repo} and weights at {checkpoint}; fetch both "
                                    "once online with python -c \"import torch; "
                                    f"torch.hub.load('facebookresearch/dino:main', '{DINO_MODEL}')\"")
        return torch.hub.load(str(repo), DINO_MODEL, source="local").to(self.device).eval()

    @torch.no_grad()
    def structure_distance(self, source, edited) -> float:
        """MSE between the DINO key self-similarities of the two whole images."""
        def similarity(image):
            pixels = dino_resize(torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None])
            pixels = pixels.to(self.device)
            mean = torch.tensor(IMAGENET_MEAN, device=self.device)[:, None, None]
            std = torch.tensor(IMAGENET_STD, device=self.device)[:, None, None]
            captured = []
            hook = self.dino.blocks[-1].attn.qkv.register_forward_hook(lambda m, i, out: captured.append(out))
            try:
                self.dino((pixels - mean) / std)
            finally:
                hook.remove()
            dim = captured[0].shape[-1] // 3
            return keys_self_similarity(captured[0][0, :, dim:2 * dim])
        return float(torch.nn.functional.mse_loss(similarity(edited), similarity(source)))

    @torch.no_grad()
    def score(self, source, edited, mask, target_prompt: str) -> dict[str, float | None]:
        """Every metric for one case; None for the absent ones and where the reference gives "nan"."""
        mask = np.asarray(mask, dtype=np.float32)
        row = region_metrics(source, edited, mask)
        keep = 1 - mask
        row["lpips_unedit"] = None
        if self.lpips is not None and keep.sum() > 0:
            a, b = (_masked(x, keep).to(self.device) * 2 - 1 for x in (source, edited))
            row["lpips_unedit"] = float(self.lpips(a, b))
        row["clip_whole"] = row["clip_edited"] = None
        if self.clip is not None:
            whole = torch.from_numpy(np.asarray(edited)).permute(2, 0, 1).to(self.device)
            row["clip_whole"] = float(self.clip(whole, target_prompt))
            if mask.sum() > 0:
                region = np.uint8(np.asarray(edited) * mask[..., None])
                row["clip_edited"] = float(self.clip(torch.from_numpy(region).permute(2, 0, 1).to(self.device),
                                                     target_prompt))
        row["structure_distance"] = self.structure_distance(source, edited) if self.dino is not None else None
        return row
