"""Inversion, reconstruction and prompt editing of real images with FLUX and any registered solver.

One pipeline for all three:

1. the image is centre-cropped to a multiple of 16 and VAE-encoded (posterior mode) to packed latents;
2. inversion integrates dx/dt = v(x, t | source prompt) along the reversed FLUX schedule, data (t = 0)
   to noise (t = 1);
3. denoising integrates the schedule from that noise back to data with the target prompt
   (reconstruction: the same prompt);
4. the latents are decoded.

Editing stores attention features during inversion and injects them during the first ``inject``
denoising steps (:mod:`fireflow_edu.flux.attention`). The solver state stays float32 whatever the
transformer's dtype. FireFlow's velocity cache starts empty in each pass, so an 8-step FireFlow edit
costs 9 + 9 = 18 transformer calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from ..analysis import rmse
from ..schedules import flux_schedule
from ..solvers import get_solver, integrate
from ..timing import Clock
from .attention import AttentionFeatures, feature_processors, parse_strategy, resolve_blocks
from .images import crop_to_multiple, decode_latents, encode_image, latent_image_ids, size_multiple, to_pixels
from .metrics import reconstruction_metrics
from .velocity import FluxVelocity, Guidance, encode_prompt, per_step_guidance, resolve_guidance


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
                    "timesteps": self.timesteps.cpu(), "nfe": self.nfe, "seconds": self.seconds,
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
                   data["timesteps"], data["nfe"], data["seconds"], data["settings"], features)


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


def _resolved(pipe, guidance: Guidance, default: float, steps: int):
    """``guidance`` checked against the transformer and the step count before any work; "auto" resolved."""
    embedded = pipe.transformer.config.guidance_embeds
    resolved = resolve_guidance(guidance, embedded, default)
    per_step_guidance(resolved, steps, embedded)  # a per-step list must have one value per step
    return resolved


def _check_steps(steps: int, inject: int = 0) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if isinstance(inject, bool) or not isinstance(inject, int) or not 0 <= inject <= steps:
        raise ValueError(f"inject must be an integer between 0 and steps ({steps}), got {inject!r}")


def _prepare(pipe, image, clock: Clock):
    pixels = crop_to_multiple(to_pixels(image), size_multiple(pipe))
    with clock.phase("encode"):
        latents = encode_image(pipe, pixels)
    return pixels, latents


def invert(pipe, image, prompt: str, steps: int = 8, method: str = "fireflow", guidance: Guidance = "auto", *,
           inject: int = 0, strategy: str = "replace_v", blocks: Iterable[int] | None = None,
           cache_device: str | None = None, progress: bool = True) -> InversionResult:
    """Map ``image`` to FLUX noise latents by integrating the ODE from t = 0 to t = 1.

    Args:
        pipe: a FluxPipeline (:func:`~fireflow_edu.flux.loading.load_pipeline`, or the tiny one).
        image: PIL image or [H, W, 3] array; centre-cropped to a multiple of 16.
        prompt: the source prompt.
        steps: solver steps on FLUX's shifted schedule.
        method: any name in :data:`fireflow_edu.solvers.SOLVERS`.
        guidance: FLUX guidance scale (a number, or one per step); "auto": 1.0 (faithful inversion) for
            a guidance-distilled model, none for one without a guidance embedding.
        inject: store the attention features of the ``inject`` steps nearest the noise for later edits
            (``strategy``, ``blocks`` and ``cache_device`` as in :func:`edit`); 0 stores nothing.

    Inverting once and calling :func:`edit_inversion` for each target prompt costs 9 + 9k NFE for k
    targets with 8 FireFlow steps, instead of 18k.
    """
    _check_steps(steps, inject)
    get_solver(method)
    parse_strategy(strategy)
    guidance = _resolved(pipe, guidance, 1.0, steps)
    chosen = resolve_blocks(pipe.transformer, blocks)
    features = AttentionFeatures(strategy, inject, chosen, cache_device) if inject > 0 else None
    clock = Clock(pipe._execution_device)
    pixels, latents = _prepare(pipe, image, clock)
    with feature_processors(pipe.transformer, features) if features is not None else nullcontext():
        inversion = _invert_latents(pipe, pixels, latents, prompt, steps, method, guidance, features, progress, clock)
    inversion.settings = {"source_prompt": prompt, "steps": steps, "inject": inject, "inversion_guidance": guidance,
                          "method": method, "strategy": strategy, "blocks": list(chosen)}
    inversion.features = features
    return inversion


def solve_pass(transformer, x: torch.Tensor, embedding, img_ids: torch.Tensor, timesteps: torch.Tensor,
               method: str, guidance, features: AttentionFeatures | None = None, progress: bool = False):
    """One solver pass of FLUX's ODE over ``timesteps`` on packed latents ``x`` [1, L, C].

    An increasing grid inverts (``features`` store), a decreasing one denoises (``features`` inject).
    Returns the solver's SolveResult.
    """
    velocity = FluxVelocity(transformer, embedding, img_ids, timesteps, guidance, features)
    return integrate(velocity, x, timesteps, method, progress=progress)


def _invert_latents(pipe, pixels, latents, prompt, steps, method, guidance, features, progress, clock):
    height, width = pixels.shape[:2]
    sampling = flux_schedule(steps, latents.shape[1], pipe.scheduler.config)
    with clock.phase("text"):
        embedding = encode_prompt(pipe, prompt)
    with clock.phase("invert"):
        result = solve_pass(pipe.transformer, latents, embedding, latent_image_ids(pipe, height, width),
                            sampling.flip(0), method, guidance, features, progress)
    return InversionResult(result.x, latents, pixels, sampling, result.nfe, dict(clock.seconds))


def _denoise(pipe, inversion: InversionResult, prompt, method, guidance, features, progress, clock):
    height, width = inversion.source.shape[:2]
    with clock.phase("text"):
        embedding = encode_prompt(pipe, prompt)
    with clock.phase("denoise"):
        result = solve_pass(pipe.transformer, inversion.noise, embedding, latent_image_ids(pipe, height, width),
                            inversion.timesteps, method, guidance, features, progress)
    with clock.phase("decode"):
        pixels = decode_latents(pipe, result.x, height, width)
    return result, pixels


def _result(inversion, denoised, pixels, seconds, settings, features=None, with_metrics=False) -> EditResult:
    seconds = {**seconds, "total": sum(seconds.values())}
    metrics = {}
    if with_metrics:
        # latent_rmse isolates the solver's round-trip error from the VAE's own encode/decode loss
        metrics = {**reconstruction_metrics(inversion.source, pixels), "latent_rmse": rmse(denoised.x, inversion.latents)}
    return EditResult(
        image=Image.fromarray(pixels), source=Image.fromarray(inversion.source),
        nfe=inversion.nfe + denoised.nfe, nfe_inversion=inversion.nfe, nfe_denoising=denoised.nfe,
        seconds=seconds, settings=settings,
        metrics=metrics,
        cache_bytes=features.nbytes if features is not None else 0,
        injections=features.injections if features is not None else 0,
    )


def generate(pipe, prompt: str, height: int, width: int, steps: int = 8, method: str = "fireflow",
             guidance: Guidance = "auto", seed: int = 0, progress: bool = False) -> tuple[Image.Image, int]:
    """Text to image with any solver on FLUX's schedule (seeded Gaussian noise at t = 1).

    ``guidance`` is FLUX's distilled guidance scale (a number, or one per step); "auto" is 2.0, the
    scale FireFlow edits with, for a guidance-distilled model and none for a model without the embedding.

    Returns the image and the NFE used (FireFlow: steps + 1, the paper's Table 2 setting).
    ``height`` and ``width`` must be multiples of 16 (of 2 * vae_scale_factor).
    """
    _check_steps(steps)
    guidance = _resolved(pipe, guidance, 2.0, steps)
    multiple = size_multiple(pipe)
    if height % multiple or width % multiple or height < multiple or width < multiple:
        raise ValueError(f"height and width must be positive multiples of {multiple}, got {height}x{width}")
    tokens = (height // multiple) * (width // multiple)
    channels = pipe.transformer.config.in_channels
    noise = torch.randn(1, tokens, channels, generator=torch.Generator().manual_seed(seed)).to(pipe._execution_device)
    sampling = flux_schedule(steps, tokens, pipe.scheduler.config)
    result = solve_pass(pipe.transformer, noise, encode_prompt(pipe, prompt), latent_image_ids(pipe, height, width),
                        sampling, method, guidance, progress=progress)
    return Image.fromarray(decode_latents(pipe, result.x, height, width)), result.nfe


def reconstruct(pipe, image, prompt: str = "", steps: int = 8, method: str = "fireflow", guidance: Guidance = "auto", *,
                progress: bool = True) -> EditResult:
    """Invert and regenerate with the same prompt and no injection: the paper's reconstruction test.

    ``metrics`` holds RMSE over RGB 0-255, PSNR and SSIM against the cropped source, and
    ``latent_rmse``, the round trip's error in latent space (the solver's share alone). ``guidance``
    "auto" is 1.0 both ways for a guidance-distilled model.
    """
    _check_steps(steps)
    get_solver(method)
    guidance = _resolved(pipe, guidance, 1.0, steps)
    clock = Clock(pipe._execution_device)
    pixels, latents = _prepare(pipe, image, clock)
    inversion = _invert_latents(pipe, pixels, latents, prompt, steps, method, guidance, None, progress, clock)
    denoised, out = _denoise(pipe, inversion, prompt, method, guidance, None, progress, clock)
    settings = {"prompt": prompt, "steps": steps, "method": method, "guidance": guidance}
    return _result(inversion, denoised, out, clock.seconds, settings, with_metrics=True)


def edit(pipe, image, source_prompt: str, target_prompt: str, steps: int = 8, inject: int = 1,
         guidance: Guidance = "auto", method: str = "fireflow", strategy: str = "replace_v",
         blocks: Iterable[int] | None = None, *, inversion_guidance: Guidance = "auto",
         cache_device: str | None = None, progress: bool = True) -> EditResult:
    """Edit ``image`` from ``source_prompt`` to ``target_prompt`` (FireFlow's recipe by default).

    Args:
        steps: solver steps for inversion and for denoising (8 in the paper's headline setting).
        inject: denoising steps, nearest the noise, that receive the stored features (0 = none).
        guidance: FLUX guidance while denoising: a number, or a per-step list like [1, 2, 2, ...];
            "auto" is 2.0 for a guidance-distilled model (the reference setting), none without the embedding.
        method: solver name; ``strategy``: "replace_v", "add_q", "add_k", "add_v" or a "+" combination.
        blocks: single-stream block indices taking part (default all).
        inversion_guidance: guidance while inverting the source ("auto": 1.0, as the reference code).
        cache_device: keep stored features there (e.g. "cpu") instead of beside the activations.

    Returns an :class:`EditResult`; ``nfe`` is 18 for the default 8-step FireFlow edit. The same as
    :func:`invert` with ``inject`` followed by :func:`edit_inversion`, which is cheaper for several targets.
    """
    _check_steps(steps, inject)
    _resolved(pipe, guidance, 2.0, steps)  # before the inversion: a bad target guidance fails at once
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
    guidance = _resolved(pipe, guidance, 2.0, steps)
    features = inversion.features
    clock = Clock(pipe._execution_device)
    with feature_processors(pipe.transformer, features) if features is not None else nullcontext():
        if features is not None:
            features.injections = 0
        denoised, out = _denoise(pipe, inversion, target_prompt, inversion.settings["method"], guidance, features,
                                 progress, clock)
    seconds = {phase: inversion.seconds.get(phase, 0.0) + clock.seconds.get(phase, 0.0)
               for phase in {**inversion.seconds, **clock.seconds}}
    settings = {**inversion.settings, "target_prompt": target_prompt, "guidance": guidance}
    return _result(inversion, denoised, out, seconds, settings, features)
