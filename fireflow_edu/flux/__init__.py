"""FLUX as a model family: its adapter (packed latents, FLUX's schedule, the guidance embedding, features in the
single-stream blocks), a tiny random-weight FluxPipeline built offline, and FLUX's edit-speed benchmark.

Editing itself is family-neutral: ``from fireflow_edu.editing import edit``. Names resolve on first use.
"""

from ..lazy import lazy_exports

__all__ = ["FluxAdapter", "build_tiny_pipeline", "tiny_pipeline"]
__getattr__ = lazy_exports(__name__, {"FluxAdapter": "adapter", "build_tiny_pipeline": "tiny", "tiny_pipeline": "tiny"})
