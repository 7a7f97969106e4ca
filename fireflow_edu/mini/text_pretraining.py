"""Pretraining the mini FLUX's text encoders, to be frozen afterwards, as FLUX freezes its pretrained CLIP and T5.

FLUX's encoders arrive pretrained: their tokens already say which adjective belongs to which noun. Randomly
initialised frozen encoders do not, and binding is one of the mini's two-object failures ("a red circle and a
blue square" drawn with the colours swapped; ``mini-bench``'s composition table counts it apart). Here both encoders learn
the scene grammar's meaning contrastively (CLIP; Radford et al. 2021) against a small image encoder on renders.
With unit embeddings f(image) [B, D] and g(caption) [B, D] and a learned scale s,

    L = CE(s f g^T, diag) + CE(s g f^T, diag)       (symmetric InfoNCE over the batch, per encoder)

where each image's row also holds a **hard negative**: its caption with the two objects' colours swapped (same
words, same order; only for objects of different shapes, where the swap means another scene). Only a text side
that binds each colour to its noun can tell the two apart. The CLIP text encoder is read as FLUX reads it (its
pooled [EOS] state, the ``pooled_projections`` input); the T5 encoder as the mean of the tokens FLUX hands the
transformer (all ``MAX_WORDS`` positions, padding included, as FLUX's pipeline runs T5 without a mask), so the
binding has to live in the tokens themselves. Projection heads and the image encoder are thrown away afterwards.

Scenes are drawn in the world's caption order (drawn order: either object may be named first). Held-out rows
(validation seeds): ``binding_*``, the share of two-object scenes of different shapes whose image is closer to its
caption than to the swapped one (chance 50%), and ``retrieval_*``, the share of captions whose own image is the
closest of ``eval_scenes`` (text to image, top 1; identical captions count as right).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..reporting import save_torch, write_json
from .batches import renders, step_scenes
from .scenes import SIZE, VALIDATION_SEEDS, random_scene
from .phase import Phase, saved_run
from .train_config import TextConfig, check_device

CHECKPOINT = "text_checkpoint.pt"
ENCODERS = ("clip", "t5")


def swapped_colours(scene):
    """``scene`` with its two objects' colours exchanged, or None where that names the same scene (one object, or
    two of the same shape)."""
    if len(scene.objects) != 2 or scene.objects[0].kind == scene.objects[1].kind:
        return None
    a, b = scene.objects
    return replace(scene, objects=(replace(a, color=b.color), replace(b, color=a.color)))


class ImageEncoder(nn.Module):
    """Renders [B, 3, 32, 32] in [-1, 1] -> embeddings [B, dim]: three stride-2 convolutions, then a linear map of
    the 4x4 grid (so where an object stands can decide which words it goes with)."""

    def __init__(self, dim: int, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Flatten(), nn.Linear(4 * width * (SIZE // 8) ** 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Contrastive(nn.Module):
    """The image encoder, one projection head per text encoder, and the learned logit scale (CLIP's, from 1/0.07)."""

    def __init__(self, dim: int):
        super().__init__()
        self.image = ImageEncoder(dim)
        self.heads = nn.ModuleDict({name: nn.Linear(dim, dim) for name in ENCODERS})
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))


def text_features(pipe, captions: list[str]) -> dict[str, torch.Tensor]:
    """What FLUX reads of each caption, per encoder: CLIP's pooled state [B, D], T5's mean token [B, D]."""
    from .train import encode

    tokens, pooled, _ = encode(pipe, captions)
    return {"clip": pooled, "t5": tokens.mean(1)}


def embeddings(model: Contrastive, pipe, pixels: torch.Tensor, captions: list[str]):
    """Unit image embeddings [B, D] and unit caption embeddings per encoder."""
    unit = lambda x: nn.functional.normalize(x, dim=-1)  # noqa: E731
    features = text_features(pipe, captions)
    return unit(model.image(pixels)), {name: unit(model.heads[name](features[name])) for name in ENCODERS}


def contrastive_loss(model: Contrastive, pipe, pixels: torch.Tensor, scenes: list) -> torch.Tensor:
    """The loss above on one batch, summed over both encoders."""
    swaps = [swapped_colours(s) for s in scenes]
    hard = [i for i, s in enumerate(swaps) if s is not None]
    captions = [s.caption for s in scenes] + [swaps[i].caption for i in hard]
    images, texts = embeddings(model, pipe, pixels, captions)
    # logits in float32 whatever the autocast (bf16 on CUDA): with a scale up to 100, bf16 leaves too few digits
    with torch.autocast(pixels.device.type, enabled=False):
        images, texts = images.float(), {name: t.float() for name, t in texts.items()}
        b, scale = len(scenes), model.log_scale.exp().clamp(max=100)
        blocked = torch.ones(b, len(hard), dtype=torch.bool, device=pixels.device)  # image i sees only its own swap
        blocked[hard, torch.arange(len(hard))] = False
        labels = torch.arange(b, device=pixels.device)
        loss = 0
        for name in ENCODERS:
            text, swapped = texts[name][:b], texts[name][b:]
            # masked after scaling: -inf times the scale's gradient would be NaN
            hard = (scale * images @ swapped.T).masked_fill(blocked, -torch.inf)
            per_image = torch.cat([scale * images @ text.T, hard], 1)
            loss = loss + nn.functional.cross_entropy(per_image, labels) + \
                nn.functional.cross_entropy(scale * text @ images.T, labels)
        return loss / 2


@torch.no_grad()
def evaluate_text(model: Contrastive, pipe, num_scenes: int) -> dict[str, float]:
    """Held-out binding and retrieval (module docstring), per encoder."""
    scenes = [random_scene(VALIDATION_SEEDS[20_000 + i]) for i in range(num_scenes)]
    pixels = renders(scenes).to(model.log_scale.device)
    pairs = [(i, s) for i, s in enumerate(map(swapped_colours, scenes)) if s is not None]
    captions = [s.caption for s in scenes]
    images, texts = embeddings(model, pipe, pixels, captions + [s.caption for _, s in pairs])
    rows = [i for i, _ in pairs]
    same = torch.tensor([[a == b for b in captions] for a in captions], device=images.device)
    row = {}
    for name in ENCODERS:
        text, swapped = texts[name][:num_scenes], texts[name][num_scenes:]
        own, other = (images[rows] * text[rows]).sum(-1), (images[rows] * swapped).sum(-1)
        row[f"binding_{name}"] = float((own > other).float().mean())
        best = (text @ images.T).argmax(1)
        row[f"retrieval_{name}"] = float(same[torch.arange(num_scenes), best].float().mean())
    return row


def pretrain_text_encoders(pipe, config: TextConfig, out: Path, progress: bool = True, on_eval=None) -> dict:
    """Train ``pipe``'s CLIP and T5 text encoders (in place) with the loss above, checkpointing to
    ``out/text_checkpoint.pt`` (a rerun resumes); save them into ``out`` (``text_encoder/``, ``text_encoder_2/``,
    ``text_pretraining.json``) and return the record: config, minutes, steps run on each device (``steps_by_device``),
    loss every 100 steps, held-out curve."""
    device = check_device(config.device)
    out = Path(out)
    torch.manual_seed(config.seed)
    pipe.to(device)
    encoders = [pipe.text_encoder, pipe.text_encoder_2]
    model = Contrastive(pipe.text_encoder.config.hidden_size).to(device)
    for m in [*encoders, model]:  # eval mode: no dropout (T5's), so a resumed run draws what an unbroken one did
        m.eval().requires_grad_(True)
    phase = Phase("text", [*encoders, model], config.steps, config.lr, config.warmup)
    path = out / CHECKPOINT
    saved = saved_run(path, config, holds=("phase",))
    if saved is not None:
        phase.load(saved["phase"])

    def batch(step: int):
        scenes = step_scenes(config.seed, "text", step, config.batch_size)
        return renders(scenes).to(device), scenes

    phase.run(batch, lambda data: contrastive_loss(model, pipe, *data), device,
              lambda: evaluate_text(model, pipe, config.eval_scenes),
              lambda: save_torch({"config": asdict(config), "phase": phase.state()}, path),
              config.eval_every, config.checkpoint_every, on_eval, progress)
    for m in encoders:
        m.requires_grad_(False)
    pipe.text_encoder.save_pretrained(out / "text_encoder")
    pipe.text_encoder_2.save_pretrained(out / "text_encoder_2")
    record = {"config": asdict(config), **phase.record()}
    write_json(out / "text_pretraining.json", record)
    return record
