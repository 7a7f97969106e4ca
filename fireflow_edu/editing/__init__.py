"""Inverting and editing images with any solver, on any model family with an adapter (FLUX, Stable Diffusion 3).

Nothing here names a family: :mod:`~fireflow_edu.editing.boundary` maps a pipeline's class to its adapter.
``from fireflow_edu.editing import edit`` edits with a FluxPipeline and a StableDiffusion3Pipeline alike. Needs
the ``flux`` extras (diffusers, transformers, ...); real weights load offline from the Hugging Face cache or a
local path (:func:`load_pipeline`). Names resolve on first use.
"""

from ..lazy import lazy_exports

__all__ = ["EditResult", "InversionResult", "edit", "edit_inversion", "generate", "invert", "load_pipeline",
           "lpips_distance", "model_adapter", "psnr", "reconstruct", "reconstruction_metrics", "rmse_255", "ssim"]
__getattr__ = lazy_exports(__name__, {
    **{name: "api" for name in ("EditResult", "InversionResult", "edit", "edit_inversion", "generate", "invert",
                                "reconstruct")},
    **{name: "metrics" for name in ("lpips_distance", "psnr", "reconstruction_metrics", "rmse_255", "ssim")},
    "load_pipeline": "loading",
    "model_adapter": "boundary",
})
