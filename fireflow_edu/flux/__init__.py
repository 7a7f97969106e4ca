"""FireFlow on FLUX through diffusers: load, invert, reconstruct, edit.

Needs the ``flux`` extras (diffusers, transformers, ...). Real FLUX.1-dev weights load
offline from the Hugging Face cache or a local path; :func:`tiny_pipeline` builds a
random-weight FLUX offline so every line runs on a CPU. Names resolve on first use.
"""

from ..lazy import lazy_exports

__all__ = ["EditResult", "InversionResult", "edit", "edit_inversion", "generate", "invert", "load_pipeline",
           "lpips_distance", "psnr", "reconstruct", "reconstruction_metrics", "rmse_255", "ssim", "tiny_pipeline"]
__getattr__ = lazy_exports(__name__, {
    **{name: "editing" for name in ("EditResult", "InversionResult", "edit", "edit_inversion", "generate", "invert",
                                           "reconstruct")},
    **{name: "metrics" for name in ("lpips_distance", "psnr", "reconstruction_metrics", "rmse_255", "ssim")},
    "load_pipeline": "loading",
    "tiny_pipeline": "tiny",
})
