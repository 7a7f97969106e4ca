"""Training the mini FLUX.1-dev from scratch: a CFG teacher, then a guidance-distilled student.

How FLUX.1-dev got its ``guidance`` input, at laptop scale:

1. **Teacher** (no guidance embedding, like a plain rectified flow). Loss in the package
   convention (t = 1 noise): x_t = (1 - t) x + t n, ``|| (n - x) - v(x_t, t | c) ||^2`` with t
   logit-normal (sigmoid of N(0, 1)) as in SD3 / FLUX training. The caption c is replaced by
   the empty prompt with probability ``caption_dropout``, so the same network also learns the
   unconditional velocity v(x_t, t | "") that classifier-free guidance needs.
2. **Student** (``guidance_embeds=True``), initialised from the teacher with a zero-output
   guidance embedder, so it starts as the teacher. It learns to give in one call what the
   teacher gives with two: ``v_g = v_u + g (v_c - v_u)`` for g uniform in ``guidance_range``.

The transformer is built with adaLN-Zero initialisation (every block starts as the identity, as
in DiT), both phases keep an exponential moving average of the weights with a warm-up (the EMA is
what gets evaluated and shipped), and each step renders a fresh batch of random scenes, so there is no
data set to ship. Training seeds are drawn from [0, 10^9); evaluation uses seeds from 10^9 up.

A checkpoint is written every ``checkpoint_every`` steps; :func:`train_mini_flux` resumes from
it after an interruption, bit for bit in the data it draws.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..flux.images import latent_image_ids
from ..solvers import integrate
from ..schedules import flux_schedule
from .detect import check_scene
from .scenes import SIZE, random_scene

EVAL_SEED_OFFSET = 10**9
CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Every setting of a mini-FLUX training run (recorded in ``training.json``)."""

    teacher_steps: int = 4500
    distill_steps: int = 800
    batch_size: int = 64
    lr: float = 1e-3
    distill_lr: float = 3e-4
    warmup: int = 200
    ema_decay: float = 0.999
    caption_dropout: float = 0.15
    guidance_range: tuple[float, float] = (1.0, 4.0)
    seed: int = 0
    eval_every: int = 400
    eval_captions: int = 128
    eval_guidance: float = 2.0
    checkpoint_every: int = 200
    compile: bool = False

    def __post_init__(self):
        for name in ("teacher_steps", "batch_size", "eval_captions", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.distill_steps < 0:
            raise ValueError(f"distill_steps must be 0 or more, got {self.distill_steps}")
        if not 0 <= self.caption_dropout < 1:
            raise ValueError(f"caption_dropout must lie in [0, 1), got {self.caption_dropout}")
        low, high = self.guidance_range
        if not 0 < low <= high:
            raise ValueError(f"guidance_range must be (low, high) with 0 < low <= high, got {self.guidance_range}")


def scene_batch(pipe, seeds) -> tuple[torch.Tensor, list[str]]:
    """Packed latents [B, 64, 48] in [-1, 1] and captions for the scenes of ``seeds``."""
    scenes = [random_scene(int(s)) for s in seeds]
    pixels = torch.tensor(np.stack([s.render() for s in scenes])).permute(0, 3, 1, 2).float() / 127.5 - 1
    latent = pipe.vae.encode(pixels).latent_dist.mode()
    b, c, h, w = latent.shape
    return pipe._pack_latents(latent, b, c, h, w), [s.caption for s in scenes]


def encode(pipe, captions: list[str]):
    """T5 tokens [B, S, D], pooled CLIP [B, P] and text ids, with gradients to the text encoders."""
    return pipe.encode_prompt(captions, prompt_2=None, device=pipe._execution_device,
                              max_sequence_length=pipe.tokenizer_2.model_max_length)


def call(transformer, x, t, text, img_ids, guidance=None):
    """One transformer call on a batch; ``text`` is (tokens, pooled, text_ids), t and guidance [B]."""
    tokens, pooled, text_ids = text
    return transformer(hidden_states=x, timestep=t, guidance=guidance, pooled_projections=pooled,
                       encoder_hidden_states=tokens, txt_ids=text_ids, img_ids=img_ids, return_dict=False)[0]


def cfg_velocity(teacher, x, t, cond, uncond, img_ids, scale: torch.Tensor | float):
    """Classifier-free guidance v_u + g (v_c - v_u), both branches in one batched call."""
    both = (torch.cat([cond[0], uncond[0]]), torch.cat([cond[1], uncond[1]]), cond[2])
    v_cond, v_uncond = call(teacher, torch.cat([x, x]), torch.cat([t, t]), both, img_ids).chunk(2)
    scale = torch.as_tensor(scale, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
    return v_uncond + scale * (v_cond - v_uncond)


def logit_normal(batch: int, generator: torch.Generator) -> torch.Tensor:
    return torch.sigmoid(torch.randn(batch, generator=generator))


@torch.no_grad()
def evaluate(pipe, transformer, num_captions: int, guidance: float, steps: int = 10) -> dict[str, float]:
    """Held-out text to image (FireFlow, ``steps`` steps): share of images the detector reads back right.

    A transformer with a guidance embedding gets ``guidance`` as its input; one without it is
    guided by classifier-free guidance at that scale (two branches per call).
    """
    scenes = [random_scene(EVAL_SEED_OFFSET + i) for i in range(num_captions)]
    cond = encode(pipe, [s.caption for s in scenes])
    img_ids = latent_image_ids(pipe, SIZE, SIZE)
    noise = torch.randn(num_captions, img_ids.shape[0], transformer.config.in_channels,
                        generator=torch.Generator().manual_seed(0))
    if transformer.config.guidance_embeds:
        g = torch.full((num_captions,), float(guidance))
        velocity = lambda x, t: call(transformer, x, torch.full((x.shape[0],), float(t)), cond, img_ids, g)  # noqa: E731
    else:
        uncond = encode(pipe, [""] * num_captions)
        velocity = lambda x, t: cfg_velocity(transformer, x, torch.full((x.shape[0],), float(t)),  # noqa: E731
                                             cond, uncond, img_ids, guidance)
    x = integrate(velocity, noise, flux_schedule(steps, img_ids.shape[0], pipe.scheduler.config), "fireflow").x
    pixels = pipe._unpack_latents(x, SIZE, SIZE, pipe.vae_scale_factor)
    images = ((pipe.vae.decode(pixels, return_dict=False)[0].clamp(-1, 1) + 1) * 127.5).round().byte()
    checks = [check_scene(img.permute(1, 2, 0).numpy(), s) for img, s in zip(images, scenes)]
    return {key: float(np.mean([c[key] for c in checks])) for key in checks[0]}


def adaln_zero_(transformer) -> None:
    """DiT's adaLN-Zero: zero every modulation and the output layer, so each block starts as the identity."""
    layers = [transformer.norm_out.linear, transformer.proj_out]
    layers += [b.norm1.linear for b in transformer.transformer_blocks]
    layers += [b.norm1_context.linear for b in transformer.transformer_blocks]
    layers += [b.norm.linear for b in transformer.single_transformer_blocks]
    for layer in layers:
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)


def student_from(teacher):
    """The teacher's transformer with a guidance embedding added, zero-initialised (so student == teacher)."""
    from diffusers import FluxTransformer2DModel

    config = {k: v for k, v in teacher.config.items() if not k.startswith("_")}
    student = FluxTransformer2DModel(**{**config, "guidance_embeds": True})
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    if unexpected or any(not k.startswith("time_text_embed.guidance_embedder.") for k in missing):
        raise RuntimeError(f"teacher and student differ beyond the guidance embedder: {missing}, {unexpected}")
    torch.nn.init.zeros_(student.time_text_embed.guidance_embedder.linear_2.weight)
    torch.nn.init.zeros_(student.time_text_embed.guidance_embedder.linear_2.bias)
    return student


def _warmup_ema(decay: float):
    """EMA whose decay grows as (1 + n) / (10 + n) up to ``decay``: early averages forget the initial weights.

    Without the warm-up a 0.999 EMA still holds 0.999^800 = 45% of the (adaLN-Zero, all-identity)
    initial weights after 800 steps, and its samples are noise long after the trained weights draw shapes.
    """
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        weight = 1 - min(decay, (1 + n) / (10 + n))
        for a, c in zip(averaged, current):
            a.lerp_(c, weight)
    return update


class _Phase:
    """Optimiser, warm-up + cosine learning rate, EMA and loss history of one training phase."""

    def __init__(self, name: str, module: torch.nn.Module, steps: int, lr: float, config: TrainConfig):
        self.name, self.module, self.steps = name, module, steps
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=0.01)
        warmup = min(config.warmup, steps // 10 + 1)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda i: min(1.0, (i + 1) / warmup) * (0.1 + 0.45 * (1 + np.cos(np.pi * min(i, steps) / steps))))
        self.ema = torch.optim.swa_utils.AveragedModel(module, multi_avg_fn=_warmup_ema(config.ema_decay))
        self.step, self.losses, self.curve, self.seconds = 0, [], [], 0.0

    def update(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.schedule.step()
        self.ema.update_parameters(self.module)
        self.losses.append(loss.item())
        self.step += 1

    def state(self) -> dict:
        return {"module": self.module.state_dict(), "ema": self.ema.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "step": self.step, "losses": self.losses, "curve": self.curve,
                "seconds": self.seconds}

    def load(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.step, self.losses, self.curve, self.seconds = state["step"], state["losses"], state["curve"], state["seconds"]


class _TextAndTransformer(torch.nn.Module):
    """The modules the teacher phase trains, as one module for the optimiser and the EMA."""

    def __init__(self, pipe):
        super().__init__()
        self.transformer, self.text_encoder, self.text_encoder_2 = pipe.transformer, pipe.text_encoder, pipe.text_encoder_2


def _use_text_encoders(pipe, modules: _TextAndTransformer) -> None:
    pipe.text_encoder, pipe.text_encoder_2 = modules.text_encoder, modules.text_encoder_2


@contextmanager
def _text_encoders(pipe, modules: _TextAndTransformer):
    """Encode prompts with ``modules``' text encoders (the EMA's, for evaluation) for a while."""
    saved = pipe.text_encoder, pipe.text_encoder_2
    _use_text_encoders(pipe, modules)
    try:
        yield
    finally:
        pipe.text_encoder, pipe.text_encoder_2 = saved


def train_mini_flux(pipe, config: TrainConfig, out: Path | None = None, progress: bool = True,
                    on_eval: Callable[[str, dict], None] | None = None):
    """Train the teacher, distil the student; returns ``pipe`` holding the student (EMA weights) and a record.

    ``pipe`` is a fresh :func:`~fireflow_edu.mini.model.build_mini_pipeline` (teacher transformer, no
    guidance embedding). With ``out``, a checkpoint goes to ``out/checkpoint.pt`` every
    ``checkpoint_every`` steps and a run finds and resumes it. The record holds the config, wall
    seconds per phase, the loss every 100 steps and the held-out accuracy curve of each phase.
    """
    rng = np.random.default_rng(config.seed)
    g = torch.Generator().manual_seed(config.seed)
    img_ids = latent_image_ids(pipe, SIZE, SIZE)
    for m in (pipe.transformer, pipe.text_encoder, pipe.text_encoder_2):
        m.train().requires_grad_(True)
    teacher = _Phase("teacher", _TextAndTransformer(pipe), config.teacher_steps, config.lr, config)
    student = None
    path = Path(out) / CHECKPOINT if out is not None else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    saved = torch.load(path, weights_only=False) if path is not None and path.exists() else None
    if saved is not None:
        differ = {k for k, v in asdict(config).items() if k != "compile" and saved["config"].get(k) != v}
        if differ:
            raise ValueError(f"{path} was written with other settings ({', '.join(sorted(differ))}); "
                             "resume with the same settings or choose another output folder")
        teacher.load(saved["teacher"])
        rng.bit_generator.state = saved["numpy_rng"]
        g.set_state(saved["torch_rng"])

    def save():
        if path is None:
            return
        state = {"config": asdict(config), "teacher": teacher.state(), "numpy_rng": rng.bit_generator.state,
                 "torch_rng": g.get_state(), "student": student.state() if student is not None else None}
        torch.save(state, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)  # never leave a half-written checkpoint

    def run(phase: _Phase, transformer, loss_fn, evaluate_with):
        hot = torch.compile(transformer) if config.compile else transformer
        bar = tqdm(range(phase.step, phase.steps), initial=phase.step, total=phase.steps, desc=phase.name,
                   disable=not progress)
        start = time.perf_counter() - phase.seconds
        for _ in bar:
            x, captions = scene_batch(pipe, rng.integers(0, EVAL_SEED_OFFSET, config.batch_size))
            t = logit_normal(config.batch_size, g)
            noise = torch.randn(x.shape, generator=g)
            x_t = (1 - t[:, None, None]) * x + t[:, None, None] * noise
            phase.update(loss_fn(x, x_t, t, noise, captions, hot))
            phase.seconds = time.perf_counter() - start
            if phase.step % 100 == 0:
                bar.set_postfix(loss=f"{np.mean(phase.losses[-100:]):.4f}")
            if phase.step % config.eval_every == 0 or phase.step == phase.steps:
                row = {"step": phase.step, "minutes": round(phase.seconds / 60, 2), **evaluate_with(phase.ema.module)}
                phase.curve.append(row)
            if phase.step % config.checkpoint_every == 0 or phase.step == phase.steps:
                save()
            if on_eval is not None and phase.curve and phase.curve[-1]["step"] == phase.step:
                on_eval(phase.name, phase.curve[-1])

    def teacher_loss(x, x_t, t, noise, captions, hot):
        drop = rng.random(len(captions)) < config.caption_dropout
        text = encode(pipe, ["" if d else c for c, d in zip(captions, drop)])
        v = call(hot, x_t, t, text, img_ids)
        return ((noise - x) - v).pow(2).mean()

    def teacher_eval(ema):
        with _text_encoders(pipe, ema):
            return evaluate(pipe, ema.transformer, config.eval_captions, config.eval_guidance)

    run(teacher, pipe.transformer, teacher_loss, teacher_eval)
    trained = teacher.ema.module.eval().requires_grad_(False)
    _use_text_encoders(pipe, trained)
    pipe.transformer = trained.transformer
    record = {"config": asdict(config), "teacher": {"minutes": round(teacher.seconds / 60, 2), "curve": teacher.curve,
                                                    "loss_every_100": _every_100(teacher.losses)}}
    if config.distill_steps == 0:
        return pipe, record

    student = _Phase("distill", student_from(trained.transformer).train(), config.distill_steps, config.distill_lr, config)
    if saved is not None and saved["student"] is not None:
        student.load(saved["student"])
    uncond = encode(pipe, [""] * config.batch_size)
    low, high = config.guidance_range

    def distill_loss(x, x_t, t, noise, captions, hot):
        scale = low + (high - low) * torch.rand(len(captions), generator=g)
        with torch.no_grad():
            cond = encode(pipe, captions)
            target = cfg_velocity(trained.transformer, x_t, t, cond, uncond, img_ids, scale)
        v = call(hot, x_t, t, cond, img_ids, scale)
        return (target - v).pow(2).mean()

    run(student, student.module, distill_loss, lambda ema: evaluate(pipe, ema, config.eval_captions, config.eval_guidance))
    record["distill"] = {"minutes": round(student.seconds / 60, 2), "curve": student.curve,
                         "loss_every_100": _every_100(student.losses)}
    pipe.transformer = student.ema.module.eval().requires_grad_(False)
    return pipe, record


def _every_100(losses: list[float]) -> list[float]:
    return [float(np.mean(losses[i:i + 100])) for i in range(0, len(losses), 100)]
