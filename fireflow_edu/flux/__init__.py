"""FireFlow on FLUX through diffusers: load, invert, reconstruct, edit.

Needs the ``flux`` extras (diffusers, transformers, ...). Real FLUX.1-dev weights load
offline from the Hugging Face cache or a local path; :func:`tiny_pipeline` builds a
random-weight FLUX offline so every line runs on a CPU.
"""

from .editing import EditResult, InversionResult, edit, generate, invert, reconstruct
from .loading import load_pipeline
from .metrics import lpips_distance, psnr, reconstruction_metrics, rmse_255, ssim
from .tiny import tiny_pipeline

__all__ = ["EditResult", "InversionResult", "edit", "generate", "invert", "load_pipeline", "lpips_distance", "psnr",
           "reconstruct", "reconstruction_metrics", "rmse_255", "ssim", "tiny_pipeline"]
