"""The settings of the mini FLUX's training runs, and the command-line options made from them.

A light module (no torch at import), so ``mini-train --help`` and ``mini-autoencoder --help`` start at once.
Each field's ``help`` metadata is its option's help; :func:`add_options` turns a settings class into options,
so the defaults and the help live in one place.

``device`` picks the defaults too: on ``cuda`` a settings class's ``CUDA`` values (a larger batch, a learning
rate raised with it, fewer checkpoint writes, worker processes rendering the scenes) replace the CPU defaults
for every option not given (:func:`for_device`); the config a run records holds the values it used.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import ClassVar

# settings that change how a run computes, not what it learns: a checkpoint resumes under other values of these
HOW = ("device", "render_workers", "compile")
DEVICE_HELP = ("where to train: cpu (float32) or cuda / cuda:N (bfloat16 autocast, float32 master weights; its own "
               "defaults for the options that say so)")
WORKERS_HELP = "processes rendering the next batches' scenes while a step runs (0: the training process renders)"


def _option(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Every setting of a mini-FLUX training run (recorded in ``training.json``)."""

    teacher_steps: int = _option(8000, "teacher AdamW steps")
    distill_steps: int = _option(600, "distillation steps (0 keeps the teacher)")
    batch_size: int = _option(64, "scenes per step")
    lr: float = _option(1e-3, "teacher peak learning rate")
    distill_lr: float = _option(1e-4, "student peak learning rate")
    warmup: int = _option(200, "learning-rate warm-up steps (capped at steps // 10 + 1)")
    train_text_encoders: bool = _option(False, "train the CLIP and T5 encoders with the transformer (off: they keep "
                                              "their initial weights, as FLUX keeps its pretrained ones frozen)")
    caption_dropout: float = _option(0.15, "share of captions replaced by the empty prompt")
    uniform_t: float = _option(0.25, "share of t drawn uniformly instead of logit-normal")
    guidance_range: tuple[float, float] = _option((1.0, 4.0), "guidance scales the student learns (LOW HIGH)")
    guidance_one_share: float = _option(0.5, "share of each distillation batch at guidance 1, the flow inversion "
                                             "follows")
    caption_order: str = _option("drawn", "how captions list two objects: drawn (any order; every shipped model) or "
                                          "left_to_right (training and the held-out curve alike)")
    seed: int = _option(0, "random seed")
    eval_every: int = _option(1000, "steps between held-out evaluations")
    eval_captions: int = _option(128, "held-out captions per evaluation")
    eval_reconstructions: int = _option(24, "held-out renders reconstructed per evaluation")
    eval_guidance: float = _option(2.0, "guidance of the held-out text to image")
    checkpoint_every: int = _option(100, "steps between checkpoints")
    compile: bool = _option(False, "torch.compile the transformer")
    device: str = _option("cpu", DEVICE_HELP)
    render_workers: int = _option(0, WORKERS_HELP)

    # on a GPU a step of 64 scenes is mostly launch overhead: 4x the scenes per step, the peak learning rate 2x
    # (square-root scaling with the batch); chosen, not yet measured on a GPU (benchmarks/mini_training.md)
    CUDA: ClassVar[dict] = dict(batch_size=256, lr=2e-3, distill_lr=2e-4, warmup=500, checkpoint_every=1000,
                                render_workers=12)

    def __post_init__(self):
        self.guidance_range = tuple(self.guidance_range)
        _check_how(self)
        for name in ("batch_size", "eval_captions", "eval_reconstructions", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.teacher_steps < 0 or self.distill_steps < 0 or self.teacher_steps + self.distill_steps == 0:
            raise ValueError(f"teacher_steps and distill_steps must be 0 or more and not both 0, "
                             f"got {self.teacher_steps}, {self.distill_steps}")
        for name in ("caption_dropout", "uniform_t", "guidance_one_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        from .scenes import CAPTION_ORDERS  # here, not at the top: scenes loads numpy and matplotlib, --help need not

        if self.caption_order not in CAPTION_ORDERS:
            raise ValueError(f"caption_order must be one of {', '.join(CAPTION_ORDERS)}, got {self.caption_order!r}")
        low, high = self.guidance_range
        if not 0 < low <= high:
            raise ValueError(f"guidance_range must be (low, high) with 0 < low <= high, got {self.guidance_range}")


@dataclass
class AutoencoderConfig:
    """Every setting of a mini-FLUX autoencoder training run (recorded with the model)."""

    factor: int = _option(4, "downsampling factor: 2, 4 or 8 (FLUX's is 8 on 1024-pixel images)")
    width: int = _option(32, "channels of the first level (the others have twice as many)")
    steps: int = _option(8000, "AdamW steps")
    batch_size: int = _option(16, "scenes per step")
    lr: float = _option(1e-3, "peak learning rate")
    warmup: int = _option(200, "learning-rate warm-up steps (capped at steps // 10 + 1)")
    edge_weight: float = _option(1.0, "weight of the L1 loss on image gradients (sharp outlines)")
    kl_weight: float = _option(1e-4, "weight of the KL term (per pixel value)")
    seed: int = _option(0, "random seed")
    eval_every: int = _option(1000, "steps between held-out evaluations")
    eval_scenes: int = _option(300, "held-out scenes reconstructed per evaluation")
    checkpoint_every: int = _option(200, "steps between checkpoints")
    device: str = _option("cpu", DEVICE_HELP)
    render_workers: int = _option(0, WORKERS_HELP)

    CUDA: ClassVar[dict] = dict(batch_size=64, lr=2e-3, warmup=400, checkpoint_every=1000, render_workers=8)

    def __post_init__(self):
        _check_how(self)
        if self.factor not in (2, 4, 8):
            raise ValueError(f"factor must be 2, 4 or 8, got {self.factor}")
        for name in ("width", "steps", "batch_size", "eval_every", "eval_scenes", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")


@dataclass
class TextConfig:
    """Every setting of a mini-FLUX text-encoder pretraining run (recorded with the encoders)."""

    steps: int = _option(1500, "AdamW steps")
    batch_size: int = _option(128, "scenes and captions per step (each caption's in-batch negatives)")
    lr: float = _option(1e-3, "peak learning rate")
    warmup: int = _option(100, "learning-rate warm-up steps (capped at steps // 10 + 1)")
    seed: int = _option(0, "random seed")
    eval_every: int = _option(250, "steps between held-out evaluations")
    eval_scenes: int = _option(500, "held-out scenes per evaluation")
    checkpoint_every: int = _option(250, "steps between checkpoints")
    device: str = _option("cpu", DEVICE_HELP)

    CUDA: ClassVar[dict] = dict(batch_size=512, lr=2e-3, checkpoint_every=1000)

    def __post_init__(self):
        _check_how(self)
        for name in ("steps", "batch_size", "eval_every", "eval_scenes", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")


def _check_how(config) -> None:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", config.device):
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {config.device!r}")
    if getattr(config, "render_workers", 0) < 0:
        raise ValueError(f"render_workers must be 0 or more, got {config.render_workers}")


def differing_settings(saved: dict, config) -> list[str]:
    """The settings in which ``config`` differs from ``saved`` (a checkpoint's recorded config), those of
    :data:`HOW` aside: a run resumes on another device, with other worker counts or compiled. A setting ``saved``
    lacks (added since it was written) counts as its default, what the run that wrote it did."""
    defaults = {f.name: f.default for f in fields(config)}  # a setting added since the checkpoint: its default was
    return sorted(k for k, v in asdict(config).items() if k not in HOW and saved.get(k, defaults[k]) != v)


def for_device(settings: type, device: str = "cpu", **given):
    """``settings`` for ``device``: the class's ``CUDA`` defaults on a GPU, then the values ``given``."""
    defaults = settings.CUDA if device.startswith("cuda") else {}
    return settings(**{**defaults, **given, "device": device})


def check_device(device: str):
    """``device`` as a ``torch.device``, or a clear error (before any work) when this machine cannot run it."""
    import torch

    if device.startswith("cuda"):
        why = ("this torch is a CPU-only build" if torch.version.cuda is None else
               "torch finds no CUDA GPU here" if not torch.cuda.is_available() else None)
        index = torch.device(device).index
        if why is None and index is not None and index >= torch.cuda.device_count():
            why = f"this machine has {torch.cuda.device_count()} CUDA GPU(s)"
        if why:
            raise ValueError(f"device {device!r} was asked for, but {why} (torch {torch.__version__}); "
                             "train with --device cpu")
    return torch.device(device)


def add_options(parser: argparse.ArgumentParser, settings: type) -> None:
    """One ``--field-name`` option per field of the dataclass ``settings``, with its default and help.

    Every option's parsed default is None (not given), so :func:`from_options` can tell the CPU default from
    the device's."""
    for f in fields(settings):
        default = f.default if f.default is not MISSING else None
        on_cuda = f"; with --device cuda {settings.CUDA[f.name]}" if f.name in settings.CUDA else ""
        flag, help = f"--{f.name.replace('_', '-')}", f"{f.metadata['help']} (default {default}{on_cuda})"
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help)
        elif isinstance(default, tuple):
            parser.add_argument(flag, type=type(default[0]), nargs=len(default), default=None,
                                metavar=("LOW", "HIGH"), help=help)
        else:
            parser.add_argument(flag, type=type(default), default=None, help=help)


def from_options(args: argparse.Namespace, settings: type):
    """The ``settings`` dataclass filled from parsed options made by :func:`add_options` (:func:`for_device`)."""
    given = {f.name: getattr(args, f.name) for f in fields(settings) if getattr(args, f.name) is not None}
    return for_device(settings, given.pop("device", "cpu"), **given)
