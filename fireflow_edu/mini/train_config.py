"""The settings of a mini-FLUX training run (a light module, so ``mini-train --help`` loads no torch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """Every setting of a mini-FLUX training run (recorded in ``training.json``)."""

    teacher_steps: int = 5000
    distill_steps: int = 800
    batch_size: int = 64
    lr: float = 1e-3
    distill_lr: float = 1e-4
    warmup: int = 200
    caption_dropout: float = 0.15
    uniform_t: float = 0.25
    guidance_range: tuple[float, float] = (1.0, 4.0)
    guidance_one_share: float = 0.5
    seed: int = 0
    eval_every: int = 500
    eval_captions: int = 128
    eval_reconstructions: int = 24
    eval_guidance: float = 2.0
    checkpoint_every: int = 100
    compile: bool = False

    def __post_init__(self):
        self.guidance_range = tuple(self.guidance_range)
        for name in ("batch_size", "eval_captions", "eval_reconstructions", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.teacher_steps < 0 or self.distill_steps < 0 or self.teacher_steps + self.distill_steps == 0:
            raise ValueError(f"teacher_steps and distill_steps must be 0 or more and not both 0, "
                             f"got {self.teacher_steps}, {self.distill_steps}")
        for name in ("caption_dropout", "uniform_t", "guidance_one_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        low, high = self.guidance_range
        if not 0 < low <= high:
            raise ValueError(f"guidance_range must be (low, high) with 0 < low <= high, got {self.guidance_range}")
