"""The boundary between the family-neutral editing code and a model family (FLUX, Stable Diffusion 3).

:mod:`fireflow_edu.flux.editing` (``invert``, ``reconstruct``, ``edit``, ``generate``) and the PIE-Bench
runner name no family: they ask :func:`model_adapter` for the pipeline's adapter, which provides

- ``size_multiple``: image sides must be a multiple of it; ``device``: where the model runs;
- ``encode_image(pixels [H, W, 3] uint8) -> latents`` (the solver state, float32, the family's layout) and
  ``decode(latents, height, width) -> uint8 [H, W, 3]``; ``noise(height, width, seed)``: latents at t = 1;
- ``encode_prompt(prompt)``: the family's conditioning;
- ``schedule(steps, latents)``: the sampling grid [steps + 1] from 1 (noise) to 0 (data), as the pipeline's
  own scheduler config makes it;
- ``resolve_guidance(guidance, role, steps)``: what "auto" (and a number) means for ``role`` ("invert",
  "edit", "generate") on this model, checked before any work;
- ``velocity(conditioning, height, width, timesteps, guidance, features)``: v(x, t) in the package's time
  convention (t = 1 noise, t = 0 data; the adapter converts to its model's timestep inside), a
  :class:`StepAware` field that the solver loop tells where it is;
- ``branches(guidance)``: transformer branches per evaluation (2 under batched classifier-free guidance);
- ``resolve_blocks(blocks)`` and ``feature_hooks(features)``: which attention blocks can store and inject
  features, and a context manager that hooks them (:func:`~fireflow_edu.flux.attention.feature_hooks`);
- ``inversion_warning``: None, or why inversion is unreliable on this model (warned once by ``invert``).
"""

from __future__ import annotations

from importlib import import_module

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


class StepAware:
    """Step bookkeeping shared by the families' velocity fields, and their feature keys.

    :func:`~fireflow_edu.solvers.integrate` calls :meth:`begin_step` before each step; each evaluation is then
    at the step's start, at its midpoint, or (a measurement such as :func:`~fireflow_edu.analysis.reuse_error`)
    at its end, which is the next step's start. Features are keyed by the interval along the sampling direction,
    so an inversion step and the denoising step over the same interval meet.
    """

    def __init__(self, timesteps, features=None, varies_per_step: bool = False):
        self.num_steps = len(timesteps) - 1
        self.features = features
        self.varies_per_step = varies_per_step
        self.step: tuple[int, float, float] | None = None  # (index, t, t_next) of the current step

    def begin_step(self, index: int, t: float, t_next: float) -> None:
        self.step = (index, t, t_next)

    def locate(self, t: float) -> int:
        """The interval of an evaluation at ``t``, counted from the noise end (0 = the step leaving t = 1).

        Tells the features where they are and what to do. Anything given per step (features, guidance lists)
        is indexed by this interval, so an inversion pass and a denoising pass agree on which value belongs to
        which stretch of the time axis, whichever way they walk it.
        """
        if self.step is None:
            if self.features is not None or self.varies_per_step:
                raise ValueError(f"this {type(self).__name__} injects features or varies guidance per step, so it "
                                 "needs to know the step: drive it with fireflow_edu.solvers.integrate or solve")
            return 0
        index, start, end = self.step
        if t == start:
            step, stage = index, "start"
        elif t == end:  # the next step's start
            step, stage = min(index + 1, self.num_steps - 1), "start"
        else:
            step, stage = index, "mid"
        inverting = end > start
        interval = self.num_steps - 1 - step if inverting else step
        if self.features is not None:
            self.features.at(interval, stage, "store" if inverting else "inject")
        return interval
