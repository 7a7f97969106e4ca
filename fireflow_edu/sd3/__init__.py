"""Stable Diffusion 3 / 3.5 (MMDiT) as a model family: its adapter and a tiny offline pipeline."""

from ..lazy import lazy_exports

__all__ = ["SD3Adapter", "build_tiny_sd3_pipeline", "tiny_sd3_pipeline"]
__getattr__ = lazy_exports(__name__, {"SD3Adapter": "adapter", "build_tiny_sd3_pipeline": "tiny",
                                      "tiny_sd3_pipeline": "tiny"})
