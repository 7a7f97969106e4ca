"""The boundary between the family-neutral editing code and a model family (FLUX, Stable Diffusion 3).

:mod:`fireflow_edu.editing` (``invert``, ``reconstruct``, ``edit``, ``generate``, batch runs) and
:mod:`fireflow_edu.piebench` name no family: they ask :func:`model_adapter` for the pipeline's adapter (the
registry below maps pipeline class names to adapter classes, by module path), which provides

- ``size_multiple``: image sides must be a multiple of it; ``device``: where the model runs;
- ``encode_image(pixels [H, W, 3] uint8) -> latents`` (the solver state, float32, the family's layout) and
  ``decode(latents, height, width) -> uint8 [H, W, 3]`` (``decode_float``: the decoder's [1, 3, H, W], about [-1, 1] unclamped,
  differentiable, for a masked edit's background fit); ``noise(height, width, seed)``: latents at t = 1;
- ``encode_prompt(prompt)``: the family's conditioning;
- ``schedule(steps, latents)``: the sampling grid [steps + 1] from 1 (noise) to 0 (data), as the pipeline's
  own scheduler config makes it;
- ``resolve_guidance(guidance, role, steps)``: what "auto" (and a number) means for ``role`` ("invert",
  "edit", "generate") on this model, checked before any work;
- ``velocity(conditioning, height, width, timesteps, guidance, features)``: v(x, t) in the package's time
  convention (t = 1 noise, t = 0 data; the adapter converts to its model's timestep inside), a
  :class:`~fireflow_edu.editing.features.StepAware` field that the solver loop tells where it is;
- ``branches(guidance)``: transformer branches per evaluation (2 under batched classifier-free guidance);
- ``resolve_blocks(blocks)`` and ``feature_hooks(features)``: which attention blocks can store and inject
  features, and a context manager that hooks them (:func:`~fireflow_edu.editing.features.feature_hooks`);
- ``mask_cell`` and ``latent_mask(cells)``: the pixels on a side one position of the latents covers, and a
  boolean tensor broadcastable to the latents from a [h, w] grid of such cells (masked edits,
  :mod:`~fireflow_edu.editing.masks`);
- ``method_defaults(method)``: the settings the authors of "rf_inversion" or "flowedit" used on this family;
- ``inversion_warning``: None, or why inversion is unreliable on this model (warned once by ``invert``).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
from typing import Union

# "auto", one scale, or one scale per interval of the grid (FLUX); what a family accepts is its adapter's call
Guidance = Union[str, float, Sequence[float], None]

ADAPTERS = {  # pipeline class name: "module:class" of its adapter
    "FluxPipeline": "fireflow_edu.flux.adapter:FluxAdapter",
    "StableDiffusion3Pipeline": "fireflow_edu.sd3.adapter:SD3Adapter",
}


def model_adapter(pipe):
    """The adapter of ``pipe``'s family; a clear error for a pipeline no adapter supports."""
    name = type(pipe).__name__
    if name not in ADAPTERS:
        raise ValueError(f"{name} is not supported; supported pipelines: {', '.join(ADAPTERS)}")
    module, cls = ADAPTERS[name].split(":")
    return getattr(import_module(module), cls)(pipe)


def pipeline_schedule(scheduler, steps: int, image_tokens: int, sigmas=None):
    """The sampling grid [steps + 1], float32 from 1 (noise) to 0 (data), that a pipeline's own scheduler makes:
    ``set_timesteps`` on a copy (the pipeline's scheduler is left as it was), with the resolution-dependent shift
    mu that FLUX and SD3 pipelines compute from ``image_tokens`` when the config asks for dynamic shifting.
    ``sigmas``: the grid before shifting, as a pipeline passes it (FLUX: linspace(1, 1/N, N)); None for the
    scheduler's own."""
    import copy

    from ..schedules import flux_shift

    scheduler = copy.deepcopy(scheduler)
    config, kwargs = scheduler.config, {}
    if config.get("use_dynamic_shifting"):
        kwargs["mu"] = flux_shift(image_tokens, config.get("base_shift", 0.5), config.get("max_shift", 1.15),
                                  config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096))
    scheduler.set_timesteps(steps, device="cpu", sigmas=sigmas, **kwargs)
    return scheduler.sigmas.float()
