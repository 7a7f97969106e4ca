"""Inversion, reconstruction and prompt editing of real images with any registered solver, on any model
family with an adapter (:mod:`fireflow_edu.editing.boundary`: FLUX, Stable Diffusion 3). Nothing here names a family.

One pipeline for all three:

1. the image is centre-cropped to a multiple of the model's patch size and VAE-encoded (posterior mode);
2. inversion integrates dx/dt = v(x, t | source prompt) along the reversed schedule of the pipeline's
   scheduler, data (t = 0) to noise (t = 1);
3. denoising integrates the schedule from that noise back to data with the target prompt
   (reconstruction: the same prompt);
4. the latents are decoded.

Editing stores attention features during inversion and injects them during the first ``inject``
denoising steps (:mod:`fireflow_edu.editing.features`). The solver state stays float32 whatever the
transformer's dtype. FireFlow's velocity cache starts empty in each pass, so an 8-step FireFlow edit
costs 9 + 9 = 18 transformer calls.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from ..analysis import rmse
from ..solvers import get_solver, integrate
from ..timing import Clock
from .boundary import Guidance, model_adapter
from .features import AttentionFeatures, parse_strategy
from .images import crop_to_multiple, to_pixels
from .metrics import reconstruction_metrics


@dataclass
class InversionResult:
    """The inverted noise latents [1, L, C] of a cropped source image, what it cost, and how it was made.

    ``features`` holds the attention features stored on the way (when ``invert`` was asked to keep them),
    so :func:`edit_inversion` can edit towards any number of target prompts without inverting again.
    :meth:`save` and :meth:`load` keep it across sessions; :attr:`nbytes` is what keeping it costs.
    """

    noise: torch.Tensor
    latents: torch.Tensor
    source: np.ndarray
    timesteps: torch.Tensor
    nfe: int
    seconds: dict[str, float]
    settings: dict = field(default_factory=dict)
    features: AttentionFeatures | None = field(default=None, repr=False)
    nfe_branches: int = 0  # transformer rows: NFE x 2 when classifier-free guidance batches two branches

    @property
    def nbytes(self) -> int:
        """Bytes held by the latents, the source pixels and the stored attention features."""
        tensors = (self.noise, self.latents, self.timesteps)
        return (sum(t.numel() * t.element_size() for t in tensors) + self.source.nbytes
                + (self.features.nbytes if self.features is not None else 0))

    def save(self, path) -> None:
        """Write everything :func:`edit_inversion` needs to one ``torch.save`` file (tensors moved to the CPU)."""
        stored = self.features.stored if self.features is not None else None
        torch.save({"noise": self.noise.cpu(), "latents": self.latents.cpu(), "source": torch.from_numpy(self.source),
                    "timesteps": self.timesteps.cpu(), "nfe": self.nfe, "nfe_branches": self.nfe_branches,
                    "seconds": self.seconds,
                    "settings": self.settings,
                    "cache_device": self.features.storage_device if stored is not None else None,
                    "stored": {key: {n: t.cpu() for n, t in feats.items()} for key, feats in stored.items()}
                    if stored is not None else None}, path)

    @classmethod
    def load(cls, path, device: str | torch.device = "cpu") -> InversionResult:
        """Read a :meth:`save` file; latents go to ``device``, stored features to the cache device they had."""
        data = torch.load(path, map_location="cpu", weights_only=True)
        features = None
        if data["stored"] is not None:
            settings = data["settings"]
            cache_device = data["cache_device"]
            features = AttentionFeatures(settings["strategy"], settings["inject"], settings["blocks"], cache_device)
            features.stored = {key: {n: t.to(cache_device or device) for n, t in feats.items()}
                               for key, feats in data["stored"].items()}
        return cls(data["noise"].to(device), data["latents"].to(device), data["source"].numpy(),
                   data["timesteps"], data["nfe"], data["seconds"], data["settings"], features, data["nfe_branches"])


@dataclass
class EditResult:
    """An edited (or reconstructed) image with the source it came from, NFE, timings and settings."""

    image: Image.Image
    source: Image.Image
    nfe: int
    nfe_inversion: int
    nfe_denoising: int
    seconds: dict[str, float]
    settings: dict
    metrics: dict = field(default_factory=dict)
    cache_bytes: int = 0
    injections: int = 0
    nfe_branches: int = 0  # counting each classifier-free guidance branch (SD3); equals nfe for FLUX


def _check_steps(steps: int, inject: int = 0) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if isinstance(inject, bool) or not isinstance(inject, int) or not 0 <= inject <= steps:
        raise ValueError(f"inject must be an integer between 0 and steps ({steps}), got {inject!r}")


@dataclass
class _Passes:
    """What the solver passes of one call share: the model's adapter, the solver, progress bars and the clock."""

    adapter: object
    method: str
    progress: bool
    clock: Clock

    def prepare(self, image) -> tuple[np.ndarray, torch.Tensor]:
        """The cropped source pixels [H, W, 3] and their latents."""
        if self.adapter.inversion_warning:
            warnings.warn(self.adapter.inversion_warning, stacklevel=3)  # once per call site, as Python does
        pixels = crop_to_multiple(to_pixels(image), self.adapter.size_multiple)
        with self.clock.phase("encode"):
            latents = self.adapter.encode_image(pixels)
        return pixels, latents

    def solve(self, phase: str, prompt: str, x: torch.Tensor, timesteps: torch.Tensor, size: tuple[int, int],
              guidance, features=None):
        """One pass of the ODE conditioned on ``prompt`` along ``timesteps`` (its direction decides the kind)."""
        with self.clock.phase("text"):
            conditioning = self.adapter.encode_prompt(prompt)
        with self.clock.phase(phase):
            velocity = self.adapter.velocity(conditioning, *size, timesteps, guidance, features)
            return integrate(velocity, x, timesteps, self.method, progress=self.progress)

    def invert(self, pixels: np.ndarray, latents: torch.Tensor, prompt: str, steps: int, guidance,
               features=None) -> InversionResult:
        sampling = self.adapter.schedule(steps, latents)
        result = self.solve("invert", prompt, latents, sampling.flip(0), pixels.shape[:2], guidance, features)
        return InversionResult(result.x, latents, pixels, sampling, result.nfe, dict(self.clock.seconds),
                               nfe_branches=result.nfe * self.adapter.branches(guidance))

    def denoise(self, inversion: InversionResult, prompt: str, guidance, features=None):
        """The denoising pass from the inversion's noise, decoded: (solver result, pixels, branch evaluations)."""
        size = inversion.source.shape[:2]
        result = self.solve("denoise", prompt, inversion.noise, inversion.timesteps, size, guidance, features)
        with self.clock.phase("decode"):
            pixels = self.adapter.decode(result.x, *size)
        return result, pixels, result.nfe * self.adapter.branches(guidance)


def invert(pipe, image, prompt: str, steps: int = 8, method: str = "fireflow", guidance: Guidance = "auto", *,
           inject: int = 0, strategy: str = "replace_v", blocks: Iterable[int] | None = None,
           cache_device: str | None = None, progress: bool = True) -> InversionResult:
    """Map ``image`` to noise latents by integrating the ODE from t = 0 to t = 1.

    Args:
        pipe: a FluxPipeline or StableDiffusion3Pipeline (:func:`~fireflow_edu.editing.loading.load_pipeline`,
            or a tiny one).
        image: PIL image or [H, W, 3] array; centre-cropped to a multiple of 16.
        prompt: the source prompt.
        steps: solver steps on the pipeline's (shifted) schedule.
        method: any name in :data:`fireflow_edu.solvers.SOLVERS`.
        guidance: "auto": 1.0 (faithful inversion) for a guidance-distilled FLUX, none for a model without
            a guidance embedding, and no classifier-free guidance for SD3; or a number (one per step for FLUX).
        inject: store the attention features of the ``inject`` steps nearest the noise for later edits
            (``strategy``, ``blocks`` and ``cache_device`` as in :func:`edit`); 0 stores nothing.

    Inverting once and calling :func:`edit_inversion` for each target prompt costs 9 + 9k NFE for k
    targets with 8 FireFlow steps, instead of 18k.
    """
    _check_steps(steps, inject)
    get_solver(method)
    parse_strategy(strategy)
    adapter = model_adapter(pipe)
    guidance = adapter.resolve_guidance(guidance, "invert", steps)
    chosen = adapter.resolve_blocks(blocks)
    features = AttentionFeatures(strategy, inject, chosen, cache_device) if inject > 0 else None
    passes = _Passes(adapter, method, progress, Clock(adapter.device))
    pixels, latents = passes.prepare(image)
    with adapter.feature_hooks(features) if features is not None else nullcontext():
        inversion = passes.invert(pixels, latents, prompt, steps, guidance, features)
    inversion.settings = {"source_prompt": prompt, "steps": steps, "inject": inject, "inversion_guidance": guidance,
                          "method": method, "strategy": strategy, "blocks": list(chosen)}
    inversion.features = features
    return inversion


def _result(inversion, denoised, pixels, branches, seconds, settings, features=None,
            with_metrics=False) -> EditResult:
    seconds = {**seconds, "total": sum(seconds.values())}
    metrics = {}
    if with_metrics:
        # latent_rmse isolates the solver's round-trip error from the VAE's own encode/decode loss
        metrics = {**reconstruction_metrics(inversion.source, pixels), "latent_rmse": rmse(denoised.x, inversion.latents)}
    return EditResult(
        image=Image.fromarray(pixels), source=Image.fromarray(inversion.source),
        nfe=inversion.nfe + denoised.nfe, nfe_inversion=inversion.nfe, nfe_denoising=denoised.nfe,
        nfe_branches=inversion.nfe_branches + branches,
        seconds=seconds, settings=settings,
        metrics=metrics,
        cache_bytes=features.nbytes if features is not None else 0,
        injections=features.injections if features is not None else 0,
    )


def generate(pipe, prompt: str, height: int, width: int, steps: int = 8, method: str = "fireflow",
             guidance: Guidance = "auto", seed: int = 0, progress: bool = False) -> tuple[Image.Image, int]:
    """Text to image with any solver on the pipeline's schedule (seeded Gaussian noise at t = 1).

    ``guidance``: "auto" is 2.0 on a guidance-distilled FLUX, the scale FireFlow edits with (``FluxPipeline``
    generates at 3.5: pass it to match), none for a model without the embedding; Stable Diffusion 3's
    classifier-free guidance 7.0, as diffusers generates.

    Returns the image and the NFE used (FireFlow: steps + 1, the paper's Table 2 setting).
    ``height`` and ``width`` must be multiples of the model's patch size in pixels (16 for FLUX and SD3).
    """
    _check_steps(steps)
    adapter = model_adapter(pipe)
    guidance = adapter.resolve_guidance(guidance, "generate", steps)
    multiple = adapter.size_multiple
    if height % multiple or width % multiple or height < multiple or width < multiple:
        raise ValueError(f"height and width must be positive multiples of {multiple}, got {height}x{width}")
    noise = adapter.noise(height, width, seed)
    sampling = adapter.schedule(steps, noise)
    velocity = adapter.velocity(adapter.encode_prompt(prompt), height, width, sampling, guidance)
    result = integrate(velocity, noise, sampling, method, progress=progress)
    return Image.fromarray(adapter.decode(result.x, height, width)), result.nfe


def reconstruct(pipe, image, prompt: str = "", steps: int = 8, method: str = "fireflow", guidance: Guidance = "auto", *,
                progress: bool = True) -> EditResult:
    """Invert and regenerate with the same prompt and no injection: the paper's reconstruction test.

    ``metrics`` holds RMSE over RGB 0-255, PSNR and SSIM against the cropped source, and
    ``latent_rmse``, the round trip's error in latent space (the solver's share alone). ``guidance``
    "auto" is 1.0 both ways for a guidance-distilled model.
    """
    _check_steps(steps)
    get_solver(method)
    adapter = model_adapter(pipe)
    guidance = adapter.resolve_guidance(guidance, "invert", steps)
    passes = _Passes(adapter, method, progress, Clock(adapter.device))
    inversion = passes.invert(*passes.prepare(image), prompt, steps, guidance)
    denoised, out, branches = passes.denoise(inversion, prompt, guidance)
    settings = {"prompt": prompt, "steps": steps, "method": method, "guidance": guidance}
    return _result(inversion, denoised, out, branches, passes.clock.seconds, settings, with_metrics=True)


def edit(pipe, image, source_prompt: str, target_prompt: str, steps: int = 8, inject: int = 1,
         guidance: Guidance = "auto", method: str = "fireflow", strategy: str = "replace_v",
         blocks: Iterable[int] | None = None, *, inversion_guidance: Guidance = "auto",
         cache_device: str | None = None, progress: bool = True) -> EditResult:
    """Edit ``image`` from ``source_prompt`` to ``target_prompt`` (FireFlow's recipe by default).

    Args:
        steps: solver steps for inversion and for denoising (8 in the paper's headline setting).
        inject: denoising steps, nearest the noise, that receive the stored features (0 = none).
        guidance: guidance while denoising: a number, or for FLUX one value per interval of the grid in
            denoising order, like [1, 2, 2, ...] (the first value on the interval leaving the noise);
            "auto" is 2.0 for a guidance-distilled FLUX (the reference setting), none without the embedding,
            and classifier-free guidance 2.0 for SD3.
        method: solver name; ``strategy``: "replace_v", "add_q", "add_k", "add_v" or a "+" combination.
        blocks: attention blocks taking part (default all): FLUX's single-stream blocks, SD3's joint blocks.
        inversion_guidance: guidance while inverting the source ("auto": 1.0, as the reference code); a list
            is in the same denoising order, so its value on each interval meets the edit's on the same one.
        cache_device: keep stored features there (e.g. "cpu") instead of beside the activations.

    Returns an :class:`EditResult`; ``nfe`` is 18 for the default 8-step FireFlow edit. The same as
    :func:`invert` with ``inject`` followed by :func:`edit_inversion`, which is cheaper for several targets.
    """
    _check_steps(steps, inject)
    model_adapter(pipe).resolve_guidance(guidance, "edit", steps)  # before the inversion: a bad guidance fails now
    inversion = invert(pipe, image, source_prompt, steps, method, inversion_guidance, inject=inject,
                       strategy=strategy, blocks=blocks, cache_device=cache_device, progress=progress)
    return edit_inversion(pipe, inversion, target_prompt, guidance, progress=progress)


def edit_inversion(pipe, inversion: InversionResult, target_prompt: str, guidance: Guidance = "auto", *,
                   progress: bool = True) -> EditResult:
    """Denoise an :func:`invert` result towards ``target_prompt``, injecting the features it stored.

    Same solver and steps as the inversion; ``guidance`` as in :func:`edit`. The result's ``nfe`` counts the
    shared inversion once per edit, as a fresh :func:`edit` would; ``nfe_denoising`` is this edit's own cost.
    """
    steps = len(inversion.timesteps) - 1
    adapter = model_adapter(pipe)
    guidance = adapter.resolve_guidance(guidance, "edit", steps)
    features = inversion.features
    passes = _Passes(adapter, inversion.settings["method"], progress, Clock(adapter.device))
    with adapter.feature_hooks(features) if features is not None else nullcontext():
        if features is not None:
            features.clear_injections()
        denoised, out, branches = passes.denoise(inversion, target_prompt, guidance, features)
    seconds = {phase: inversion.seconds.get(phase, 0.0) + passes.clock.seconds.get(phase, 0.0)
               for phase in {**inversion.seconds, **passes.clock.seconds}}
    settings = {**inversion.settings, "target_prompt": target_prompt, "guidance": guidance}
    return _result(inversion, denoised, out, branches, seconds, settings, features)
