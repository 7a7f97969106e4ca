"""What every editing method shares: the result types, the argument checks, and :class:`Passes`, which runs
solver passes of one call through the model boundary with one clock and one kind of progress bar.

FireFlow's recipe (:mod:`~fireflow_edu.editing.api`), RF-Inversion (:mod:`~fireflow_edu.editing.rf_inversion`) and
FlowEdit (:mod:`~fireflow_edu.editing.flowedit`) each build on these, so they crop, encode, time, count and report
the same way and return the same :class:`EditResult`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from ..analysis import rmse
from ..solvers import integrate
from ..timing import Clock
from .features import AttentionFeatures
from .images import crop_to_multiple, to_pixels
from .metrics import reconstruction_metrics


@dataclass
class InversionResult:
    """The inverted noise latents [1, L, C] of a cropped source image, what it cost, and how it was made.

    ``trajectory`` [N + 1, *latents.shape] holds the states the inversion passed, from the data end (t = 0, the
    source latents) to the noise end (t = 1): a masked edit keeps the unedited region on it. ``features`` holds
    the attention features stored on the way (when ``invert`` was asked to keep them), so
    :func:`~fireflow_edu.editing.api.edit_inversion` can edit towards any number of target prompts without
    inverting again. :meth:`save` and :meth:`load` keep it across sessions; :attr:`nbytes` is what keeping it costs.
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
    trajectory: torch.Tensor | None = field(default=None, repr=False)

    @property
    def nbytes(self) -> int:
        """Bytes held by the latents, the trajectory, the source pixels and the stored attention features."""
        tensors = [t for t in (self.noise, self.latents, self.timesteps, self.trajectory) if t is not None]
        return (sum(t.numel() * t.element_size() for t in tensors) + self.source.nbytes
                + (self.features.nbytes if self.features is not None else 0))

    def save(self, path) -> None:
        """Write everything :func:`edit_inversion` needs to one ``torch.save`` file (tensors moved to the CPU)."""
        stored = self.features.stored if self.features is not None else None
        torch.save({"noise": self.noise.cpu(), "latents": self.latents.cpu(), "source": torch.from_numpy(self.source),
                    "timesteps": self.timesteps.cpu(), "nfe": self.nfe, "nfe_branches": self.nfe_branches,
                    "seconds": self.seconds, "settings": self.settings,
                    "trajectory": self.trajectory.cpu() if self.trajectory is not None else None,
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
        trajectory = data.get("trajectory")
        return cls(data["noise"].to(device), data["latents"].to(device), data["source"].numpy(),
                   data["timesteps"], data["nfe"], data["seconds"], data["settings"], features, data["nfe_branches"],
                   trajectory.to(device) if trajectory is not None else None)


@dataclass
class EditResult:
    """An edited (or reconstructed) image with the source it came from, NFE, timings and settings.

    ``nfe`` counts evaluations of the model's velocity (transformer calls; an inversion-free method such as
    FlowEdit has ``nfe_inversion`` 0); ``nfe_branches`` counts each classifier-free guidance branch (SD3).
    """

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


def check_steps(steps: int, inject: int = 0) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if isinstance(inject, bool) or not isinstance(inject, int) or not 0 <= inject <= steps:
        raise ValueError(f"inject must be an integer between 0 and steps ({steps}), got {inject!r}")


def check_fraction(name: str, value: float) -> float:
    """A strength or window bound in [0, 1], as a float; a clear error otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


@dataclass
class Passes:
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

    def conditioning(self, prompt: str):
        with self.clock.phase("text"):
            return self.adapter.encode_prompt(prompt)

    def solve(self, phase: str, prompt: str, x: torch.Tensor, timesteps: torch.Tensor, size: tuple[int, int],
              guidance, features=None, *, control: Callable | None = None, project: Callable | None = None,
              record_trajectory: bool = False):
        """One pass of the ODE conditioned on ``prompt`` along ``timesteps`` (its direction decides the kind).

        ``control(velocity) -> velocity`` changes the field the solver integrates (RF-Inversion's controlled
        ODEs); ``project(index, t_next, x_next) -> x_next`` changes each new state (a masked edit's blend).
        """
        conditioning = self.conditioning(prompt)
        with self.clock.phase(phase):
            velocity = self.adapter.velocity(conditioning, *size, timesteps, guidance, features)
            if control is not None:
                velocity = control(velocity)
            return integrate(velocity, x, timesteps, self.method, progress=self.progress, project=project,
                             record_trajectory=record_trajectory)

    def invert(self, pixels: np.ndarray, latents: torch.Tensor, prompt: str, steps: int, guidance,
               features=None, control: Callable | None = None) -> InversionResult:
        """Data to noise along the reversed schedule, keeping the trajectory (a masked edit follows it)."""
        sampling = self.adapter.schedule(steps, latents)
        result = self.solve("invert", prompt, latents, sampling.flip(0), pixels.shape[:2], guidance, features,
                            control=control, record_trajectory=True)
        return InversionResult(result.x, latents, pixels, sampling, result.nfe, dict(self.clock.seconds),
                               nfe_branches=result.nfe * self.adapter.branches(guidance), trajectory=result.trajectory)

    def decode(self, latents: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        with self.clock.phase("decode"):
            return self.adapter.decode(latents, *size)

    def denoise(self, inversion: InversionResult, prompt: str, guidance, features=None, *,
                control: Callable | None = None, project: Callable | None = None, refine: Callable | None = None):
        """The denoising pass from the inversion's noise, decoded: (solver result, pixels, branch evaluations).

        ``refine(latents) -> latents`` changes the final state before it is decoded (a masked edit's background
        fit), timed as its own phase; the solver result keeps the state the pass ended on.
        """
        size = inversion.source.shape[:2]
        result = self.solve("denoise", prompt, inversion.noise, inversion.timesteps, size, guidance, features,
                            control=control, project=project)
        latents = result.x
        if refine is not None:
            with self.clock.phase("refine"):
                latents = refine(latents)
        return result, self.decode(latents, size), result.nfe * self.adapter.branches(guidance)


def edit_result(inversion: InversionResult, denoised, pixels: np.ndarray, branches: int, seconds: dict,
                settings: dict, features=None, with_metrics: bool = False) -> EditResult:
    """The :class:`EditResult` of an inversion followed by a denoising pass (``denoised``: its SolveResult)."""
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
