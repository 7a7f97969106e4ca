"""Training the mini FLUX.1-dev: a classifier-free-guidance teacher, then a guidance-distilled student.

How FLUX.1-dev got its ``guidance`` input, at laptop scale:

1. **Teacher** (no guidance embedding). Rectified-flow loss in the package convention
   (t = 1 noise): x_t = (1 - t) x + t n, ``|| (n - x) - v(x_t, t | c) ||^2``. The caption c is
   replaced by the empty prompt with probability ``caption_dropout``, so the same network also
   learns the unconditional velocity v(x_t, t | "") that classifier-free guidance needs.
2. **Student** (``guidance_embeds=True``), initialised from the teacher with a zero-output guidance
   embedder, so it starts as the teacher's conditional branch. It learns to give in one call what
   the teacher gives with two: ``v_g = v_u + g (v_c - v_u)`` for g uniform in ``guidance_range``,
   except a share ``guidance_one_share`` of each batch at g = 1 exactly: there the target is the
   teacher's conditional velocity, the flow that inversion follows, and without these anchors the
   student drifts from it where v_c - v_u is large (t near 0 and 1) and inverts worse than its teacher.

t is logit-normal (sigmoid of N(0, 1), as in SD3 / FLUX training) mixed with a share
``uniform_t`` of uniform draws: logit-normal alone draws t < 0.05 or t > 0.95 only 0.16% of the
time each, yet inversion starts at t = 0 from a clean image and ends at t = 1, where the denoising
pass starts. The held-out curve tracks reconstruction (FireFlow 8 steps, 18 NFE) beside
text-to-image accuracy, since a model can draw well and still invert badly.

The transformer (and, if asked, both text encoders) train in the teacher phase; each step renders a
fresh batch of random scenes (:mod:`~fireflow_edu.mini.batches`), so there is no data set to ship. Training seeds
come from ``TRAIN_SEEDS`` and the held-out curve from ``VALIDATION_SEEDS`` (:mod:`~fireflow_edu.mini.scenes`). A
checkpoint is written every ``checkpoint_every`` steps and a run with the same output folder resumes from it,
drawing the same data, on the same device or another (the checkpoint loads on any); the trained teacher is saved
beside it (``OUT/teacher``). On ``device="cuda"`` the steps run under bfloat16 autocast with float32 weights and
optimiser state; held-out evaluations run in float32 on every device.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..editing.images import scaled_latents
from ..flux.latents import decode_latents, latent_image_ids
from ..reporting import save_torch, write_json
from ..schedules import flux_schedule
from ..solvers import integrate
from .autoencoder import render_batch
from .batches import SceneBatches, step_rng, to_unit
from .detect import check_scene, composition
from .model import save_mini_pipeline
from .phase import Phase, saved_run
from .scenes import SIZE, VALIDATION_SEEDS, in_caption_order, random_scene
from .train_config import TrainConfig, check_device

CHECKPOINT = "checkpoint.pt"


@torch.no_grad()
def packed_latents(pipe, pixels: torch.Tensor) -> torch.Tensor:
    """Renders [B, 3, H, W] in [-1, 1] -> packed, scaled latents [B, L, C] (float32, on the VAE's device)."""
    latent = scaled_latents(pipe.vae, pixels)
    b, c, h, w = latent.shape
    return pipe._pack_latents(latent, b, c, h, w)


def scene_batch(pipe, seeds) -> tuple[torch.Tensor, list[str]]:
    """Packed, scaled latents [B, L, C] and captions for the scenes of ``seeds``."""
    pixels, scenes = render_batch(seeds)
    return packed_latents(pipe, pixels), [s.caption for s in scenes]


def encode(pipe, captions: list[str]):
    """T5 tokens [B, S, D], pooled CLIP [B, P] and text ids, with gradients to the text encoders."""
    return pipe.encode_prompt(captions, prompt_2=None, device=pipe._execution_device,
                              max_sequence_length=pipe.tokenizer_2.model_max_length)


def call(transformer, x, t, text, img_ids, guidance=None):
    """One transformer call on a batch; ``text`` is (tokens, pooled, text_ids), t and guidance [B]. The velocity
    comes back in float32, whatever precision autocast ran the transformer in, so losses are float32."""
    tokens, pooled, text_ids = text
    return transformer(hidden_states=x, timestep=t, guidance=guidance, pooled_projections=pooled,
                       encoder_hidden_states=tokens, txt_ids=text_ids, img_ids=img_ids, return_dict=False)[0].float()


def cfg_velocity(teacher, x, t, cond, uncond, img_ids, scale: torch.Tensor | float):
    """Classifier-free guidance v_u + g (v_c - v_u), both branches in one batched call."""
    both = (torch.cat([cond[0], uncond[0]]), torch.cat([cond[1], uncond[1]]), cond[2])
    v_cond, v_uncond = call(teacher, torch.cat([x, x]), torch.cat([t, t]), both, img_ids).chunk(2)
    scale = torch.as_tensor(scale, dtype=v_cond.dtype, device=x.device).reshape(-1, *([1] * (x.dim() - 1)))
    return v_uncond + scale * (v_cond - v_uncond)


def sample_t(batch: int, uniform_share: float, generator: torch.Generator) -> torch.Tensor:
    """t [B]: logit-normal, except a share ``uniform_share`` of the batch drawn uniformly from [0, 1]."""
    t = torch.sigmoid(torch.randn(batch, generator=generator))
    uniform = torch.rand(batch, generator=generator) < uniform_share
    return torch.where(uniform, torch.rand(batch, generator=generator), t)


@contextmanager
def _evaluating(pipe, transformer):
    """``pipe`` with ``transformer`` and every module in eval mode, gradients off; restored after."""
    saved = pipe.transformer
    modules = [transformer, pipe.text_encoder, pipe.text_encoder_2]
    modes = [m.training for m in modules]
    pipe.transformer = transformer
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        pipe.transformer = saved
        for m, mode in zip(modules, modes):
            m.train(mode)


def evaluate(pipe, transformer, num_captions: int, num_reconstructions: int, guidance: float,
             steps: int = 10, order: str = "drawn") -> dict[str, float]:
    """Held-out text to image (FireFlow ``steps`` steps) and reconstruction PSNR (FireFlow 8 steps).

    Text to image: the share of images the detector reads back right, overall and per attribute, and for one- and
    two-object captions apart, with the two-object failures by kind (:func:`~fireflow_edu.mini.detect.composition`);
    captions name objects in ``order``. A transformer with a
    guidance embedding gets ``guidance`` as its input; one without it is guided by classifier-free
    guidance at that scale (two branches per call). Reconstruction uses the conditional velocity
    alone (guidance 1), as inversion does.
    """
    from ..editing.api import reconstruct
    from ..editing.metrics import capped

    scenes = [in_caption_order(random_scene(VALIDATION_SEEDS[i]), order) for i in range(num_captions)]
    with _evaluating(pipe, transformer):
        cond = encode(pipe, [s.caption for s in scenes])
        img_ids = latent_image_ids(pipe, SIZE, SIZE)
        device = img_ids.device
        noise = torch.randn(num_captions, img_ids.shape[0], transformer.config.in_channels,
                            generator=torch.Generator().manual_seed(0)).to(device)  # the same noise on every device
        times = lambda t: torch.full((num_captions,), float(t), device=device)  # noqa: E731
        if transformer.config.guidance_embeds:
            scales = torch.full((num_captions,), float(guidance), device=device)
            velocity = lambda x, t: call(transformer, x, times(t), cond, img_ids, scales)  # noqa: E731
        else:
            uncond = encode(pipe, [""] * num_captions)
            velocity = lambda x, t: cfg_velocity(transformer, x, times(t), cond, uncond, img_ids, guidance)  # noqa: E731
        x = integrate(velocity, noise, flux_schedule(steps, img_ids.shape[0]), "fireflow").x
        checks = [check_scene(decode_latents(pipe, x[i:i + 1], SIZE, SIZE), s) for i, s in enumerate(scenes)]
        held_out = [random_scene(VALIDATION_SEEDS[10_000 + i]) for i in range(num_reconstructions)]
        psnrs = [capped(reconstruct(pipe, s.render(), s.caption, steps=8, progress=False).metrics["psnr"]) for s in held_out]
    return {**{key: float(np.mean([c[key] for c in checks])) for key in checks[0]}, **composition(checks, scenes),
            "reconstruction_psnr": float(np.mean(psnrs)), "worst_reconstruction_psnr": float(np.min(psnrs))}


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
    return student.to(teacher.device)


@dataclass
class Batch:
    """Training step ``step``'s batch: clean latents ``x`` and noise [B, L, C], t [B], x_t = (1 - t) x + t noise,
    captions."""

    step: int
    x: torch.Tensor
    noise: torch.Tensor
    t: torch.Tensor
    captions: list[str]

    @property
    def x_t(self) -> torch.Tensor:
        t = self.t[:, None, None]
        return (1 - t) * self.x + t * self.noise


class Trainer:
    """One mini-FLUX training run: fresh scene batches, the teacher and student phases, checkpoints.

    Scenes and caption dropout are a pure function of (seed, phase, step) (:mod:`~fireflow_edu.mini.batches`);
    ``noise_rng`` (torch, on the CPU, so every device draws the same) draws t, noise and guidance scales and is
    checkpointed with the phases, so a resumed run draws the same batches as an unbroken one. ``pipe`` moves to
    ``config.device`` (checked first: a clear error, before any work, where that device is missing).
    """

    def __init__(self, pipe, config: TrainConfig, out: Path | None = None, progress: bool = True,
                 on_eval: Callable[[str, dict], None] | None = None):
        self.device = check_device(config.device)
        if pipe.transformer.config.guidance_embeds:
            raise ValueError("training starts from a teacher without guidance embedding; this pipeline has one "
                             "(it is a distilled student already)")
        self.pipe, self.config, self.progress, self.on_eval = pipe.to(self.device), config, progress, on_eval
        self.out = Path(out) if out is not None else None
        self.noise_rng = torch.Generator().manual_seed(config.seed)
        self.img_ids = latent_image_ids(pipe, SIZE, SIZE)
        text_encoders = [pipe.text_encoder, pipe.text_encoder_2]
        self.trained = [pipe.transformer, *(text_encoders if config.train_text_encoders else [])]
        for m in text_encoders:
            m.eval().requires_grad_(False)
        for m in self.trained:
            m.train().requires_grad_(True)
        self.teacher = Phase("teacher", self.trained, config.teacher_steps, config.lr, config.warmup)
        self.student: Phase | None = None
        self.uncond = None  # the empty prompt's encoding, the student's unconditional branch
        self.saved = self._resume()

    @property
    def checkpoint(self) -> Path | None:
        return self.out / CHECKPOINT if self.out is not None else None

    def _resume(self) -> dict | None:
        if self.checkpoint is None:
            return None
        saved = saved_run(self.checkpoint, self.config, holds=("teacher", "torch_rng", "student"))
        if saved is not None:
            self.teacher.load(saved["teacher"])
            self.noise_rng.set_state(saved["torch_rng"])
        return saved

    def save(self) -> None:
        if self.checkpoint is None:
            return
        state = {"config": asdict(self.config), "teacher": self.teacher.state(), "torch_rng": self.noise_rng.get_state(),
                 "student": self.student.state() if self.student is not None else None}
        save_torch(state, self.checkpoint)

    def batch(self, scenes: SceneBatches, step: int) -> Batch:
        """Step ``step``'s scenes (rendered by ``scenes``) as latents on the training device, with t and noise."""
        pixels, captions = scenes.get(step)
        x = packed_latents(self.pipe, to_unit(pixels))  # float32 even on a GPU: the latents inference will see
        t = sample_t(len(captions), self.config.uniform_t, self.noise_rng)
        noise = torch.randn(x.shape, generator=self.noise_rng)
        return Batch(step, x, noise.to(self.device), t.to(self.device), captions)

    def teacher_loss(self, batch: Batch, transformer) -> torch.Tensor:
        """Rectified-flow loss ``|| (noise - x) - v(x_t, t | c) ||^2``, captions dropped to "" at random."""
        drop = step_rng(self.config.seed, "caption_dropout", batch.step).random(len(batch.captions))
        drop = drop < self.config.caption_dropout
        text = encode(self.pipe, ["" if d else c for c, d in zip(batch.captions, drop)])
        return ((batch.noise - batch.x) - call(transformer, batch.x_t, batch.t, text, self.img_ids)).pow(2).mean()

    def distill_loss(self, batch: Batch, transformer) -> torch.Tensor:
        """``|| v_u + g (v_c - v_u) - v_student(x_t, t, g | c) ||^2``, g drawn per scene (1 for a share)."""
        size, (low, high) = len(batch.captions), self.config.guidance_range
        scale = low + (high - low) * torch.rand(size, generator=self.noise_rng)
        scale = torch.where(torch.rand(size, generator=self.noise_rng) < self.config.guidance_one_share, 1.0, scale)
        scale = scale.to(self.device)
        with torch.no_grad():
            cond = encode(self.pipe, batch.captions)
            target = cfg_velocity(self.pipe.transformer, batch.x_t, batch.t, cond, self.uncond, self.img_ids, scale)
        return (target - call(transformer, batch.x_t, batch.t, cond, self.img_ids, scale)).pow(2).mean()

    def run(self, phase: Phase, transformer, loss: Callable[[Batch, torch.nn.Module], torch.Tensor]) -> None:
        """``phase`` from its current step to its end: a step per batch, held-out rows, checkpoints."""
        config = self.config
        hot = torch.compile(transformer) if config.compile else transformer
        on_eval = (lambda row: self.on_eval(phase.name, row)) if self.on_eval is not None else None
        with SceneBatches(config.seed, phase.name, config.batch_size, phase.steps, config.render_workers,
                          config.caption_order) as scenes:
            phase.run(lambda step: self.batch(scenes, step), lambda batch: loss(batch, hot), self.device,
                      lambda: evaluate(self.pipe, transformer, config.eval_captions, config.eval_reconstructions,
                                       config.eval_guidance, order=config.caption_order),
                      self.save, config.eval_every, config.checkpoint_every, on_eval, self.progress)

    def train(self, init: dict | None = None):
        """Teacher, then (``distill_steps`` > 0) student; returns the pipeline, holding the last, and the record."""
        pipe, config = self.pipe, self.config
        if self.teacher.step < self.teacher.steps:
            self.run(self.teacher, pipe.transformer, self.teacher_loss)
        for m in self.trained:
            m.eval().requires_grad_(False)
        record = {"init": init, "config": asdict(config), "teacher": self.teacher.record()}
        if not config.distill_steps:
            return pipe, record
        if self.out is not None:  # the CFG teacher, to compare with its student or to distil again (--init OUT/teacher)
            save_mini_pipeline(pipe, self.out / "teacher")
            write_json(self.out / "teacher" / "training.json", record)
        transformer = student_from(pipe.transformer).train().requires_grad_(True)
        self.student = Phase("distill", [transformer], config.distill_steps, config.distill_lr, config.warmup)
        if self.saved is not None and self.saved["student"] is not None:
            self.student.load(self.saved["student"])
        self.uncond = encode(pipe, [""] * config.batch_size)
        self.run(self.student, transformer, self.distill_loss)
        record["distill"] = self.student.record()
        pipe.transformer = transformer.eval().requires_grad_(False)
        return pipe, record


def train_mini_flux(pipe, config: TrainConfig, out: Path | None = None, progress: bool = True,
                    on_eval: Callable[[str, dict], None] | None = None, init: dict | None = None):
    """Train the teacher, distil the student; returns ``pipe`` holding the student, and a record.

    ``pipe``: a mini FLUX without guidance embedding, fresh from
    :func:`~fireflow_edu.mini.model.build_mini_pipeline` or trained already (then the teacher phase
    fine-tunes it). With ``out``, a checkpoint goes to ``out/checkpoint.pt`` every
    ``checkpoint_every`` steps and a run finds and resumes it. The record holds ``init`` (where
    ``pipe`` came from), the config, wall minutes per phase, the loss every 100 steps and the held-out
    curve of each phase.
    """
    return Trainer(pipe, config, out, progress, on_eval).train(init)


def lineage(record: dict) -> list[dict]:
    """The training runs behind a model, oldest first: those it was initialised from (``init``), then ``record``."""
    earlier = (record.get("init") or {}).get("training")
    return (lineage(earlier) if earlier else []) + [record]


def run_minutes(record: dict) -> float:
    """Wall minutes one run trained (a record from before distillation existed holds seconds instead)."""
    if "seconds" in record:
        return record["seconds"] / 60
    return sum(record[phase]["minutes"] for phase in ("teacher", "distill") if phase in record)


def chain_minutes(record: dict) -> float:
    """Wall minutes of every run behind a model, the autoencoder and text encoders it was built on included."""
    def built_on(run: dict) -> float:  # a fresh run's autoencoder and text side, or the text side --init swapped in
        init = run.get("init") or {}
        return sum((init.get(part) or {}).get("minutes", 0.0) for part in ("autoencoder_training", "text_pretraining"))

    return sum(run_minutes(run) + built_on(run) for run in lineage(record))
