"""Training batches of fresh scenes, the same whichever process renders them, and the precision a device trains in.

Step ``k`` of a training stream (``autoencoder``, ``teacher``, ``distill``) draws its scene seeds from
``numpy.random.default_rng((seed, stream, k))``: a batch is a pure function of (seed, stream, step). So a run
resumed from a checkpoint draws what an unbroken one drew with no generator state to save, and other processes
can render the batches of the next steps while this one trains. That matters on a GPU: one core of this
project's machine drew and rendered a scene in about 1.2 ms (2026-12-03, both cores busy), so a batch of 256
takes longer to draw than a GPU step of the mini FLUX is expected to; ``workers`` processes render ahead of
the step that uses them.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from multiprocessing import get_context

import numpy as np

from .scenes import TRAIN_SEEDS, in_caption_order, random_scene

STREAMS = ("autoencoder", "teacher", "distill", "caption_dropout", "text")


def step_rng(seed: int, stream: str, step: int) -> np.random.Generator:
    """The generator of step ``step`` of ``stream`` (independent of every other step's and stream's)."""
    return np.random.default_rng((seed, STREAMS.index(stream), step))


def step_scenes(seed: int, stream: str, step: int, size: int, order: str = "drawn") -> list:
    """The ``size`` training scenes of ``step``, their objects named in caption ``order``."""
    seeds = step_rng(seed, stream, step).integers(TRAIN_SEEDS.start, TRAIN_SEEDS.stop, size)
    return [in_caption_order(random_scene(int(s)), order) for s in seeds]


def render_step(seed: int, stream: str, step: int, size: int, order: str = "drawn") -> tuple[np.ndarray, list[str]]:
    """uint8 renders [size, 32, 32, 3] and captions of :func:`step_scenes`."""
    scenes = step_scenes(seed, stream, step, size, order)
    return np.stack([s.render() for s in scenes]), [s.caption for s in scenes]


def to_unit(pixels: np.ndarray):
    """uint8 [B, H, W, 3] -> float32 torch [B, 3, H, W] in [-1, 1] (the autoencoder's and the pipeline's input)."""
    import torch

    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1


def renders(scenes):
    """The scenes rendered as float32 torch [B, 3, 32, 32] in [-1, 1] (:func:`to_unit`)."""
    return to_unit(np.stack([s.render() for s in scenes]))


class SceneBatches:
    """The batches of one stream's steps up to ``stop``, rendered here (``workers`` = 0) or by ``workers`` spawned
    processes that keep the next ``workers`` steps' batches under way, captions naming objects in ``order``. Use as a
    context manager (the pool closes)."""

    def __init__(self, seed: int, stream: str, size: int, stop: int, workers: int = 0, order: str = "drawn"):
        self.seed, self.stream, self.size, self.stop, self.workers = seed, stream, size, stop, workers
        self.order = order
        self.pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers else None
        self.pending = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def get(self, step: int) -> tuple[np.ndarray, list[str]]:
        """Renders and captions of ``step`` (:func:`render_step`)."""
        if self.pool is None:
            return render_step(self.seed, self.stream, step, self.size, self.order)
        for ahead in range(step, min(step + self.workers + 1, self.stop)):
            if ahead not in self.pending:
                self.pending[ahead] = self._submit(ahead)
        for earlier in [k for k in self.pending if k < step]:  # a step asked for again after others: start over
            self.pending.pop(earlier).cancel()
        return (self.pending.pop(step, None) or self._submit(step)).result()

    def _submit(self, step: int):
        return self.pool.submit(render_step, self.seed, self.stream, step, self.size, self.order)


def autocast(device):
    """bfloat16 autocast on a CUDA ``device`` (the weights, gradients and optimiser state stay float32); plain
    float32 on a CPU, where bfloat16 autocast made a step slower (issue 32: 0.83x of eager float32, compiled)."""
    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
