"""Training the mini FLUX from scratch as a rectified flow on rendered scenes.

Loss (package convention, t = 1 noise): x_t = (1 - t) x + t n,
|| (n - x) - v(x_t, t | caption) ||^2, with t logit-normal (sigmoid of N(0, 1)) as in
SD3 / FLUX training. The transformer and both text encoders train together; each
step renders a fresh batch of random scenes, so there is no data set to ship.
Training seeds are drawn from [0, 10^9); evaluation uses seeds from 10^9 up.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..flux.images import latent_image_ids
from .scenes import random_scene

EVAL_SEED_OFFSET = 10**9


def encode_batch(pipe, captions: list[str]):
    """T5 tokens, pooled CLIP and text ids for ``captions``, with gradients (the pipeline's own encode_prompt)."""
    return pipe.encode_prompt(captions, prompt_2=None, device=pipe._execution_device,
                              max_sequence_length=pipe.tokenizer_2.model_max_length)


def scene_batch(pipe, seeds) -> tuple[torch.Tensor, list[str]]:
    """Packed latents [B, 64, 48] in [-1, 1] and captions for the scenes of ``seeds``."""
    scenes = [random_scene(int(s)) for s in seeds]
    pixels = torch.tensor(np.stack([s.render() for s in scenes])).permute(0, 3, 1, 2).float() / 127.5 - 1
    latent = pipe.vae.encode(pixels).latent_dist.mode()
    b, c, h, w = latent.shape
    return pipe._pack_latents(latent, b, c, h, w), [s.caption for s in scenes]


def train_mini_flux(pipe, steps: int = 5000, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                    progress: bool = True, log_every: int = 100) -> list[float]:
    """Train ``pipe`` in place; returns the loss history."""
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps}, {batch_size}")
    modules = [pipe.transformer, pipe.text_encoder, pipe.text_encoder_2]
    params = [p for m in modules for p in m.parameters()]
    for m in modules:
        m.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warmup = min(200, steps // 10 + 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * min(i, steps) / steps)))
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    img_ids = latent_image_ids(pipe, 32, 32)
    losses = []
    bar = tqdm(range(steps), desc="mini FLUX", disable=not progress)
    for _ in bar:
        x, captions = scene_batch(pipe, rng.integers(0, EVAL_SEED_OFFSET, batch_size))
        tokens, pooled, text_ids = encode_batch(pipe, captions)
        t = torch.sigmoid(torch.randn(batch_size, generator=g))
        noise = torch.randn(x.shape, generator=g)
        x_t = (1 - t[:, None, None]) * x + t[:, None, None] * noise
        v = pipe.transformer(hidden_states=x_t, timestep=t, guidance=None, pooled_projections=pooled,
                             encoder_hidden_states=tokens, txt_ids=text_ids, img_ids=img_ids, return_dict=False)[0]
        loss = ((noise - x) - v).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if len(losses) % log_every == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-log_every:]):.4f}")
    for m in modules:
        m.eval().requires_grad_(False)
    return losses
