"""The mini FLUX's autoencoder: a ``diffusers.AutoencoderKL`` laid out like FLUX's, trained on scene renders.

FLUX does not denoise pixels: a VAE maps an image to a latent 8x smaller with 16 channels, and
the transformer works there while the decoder draws the detail. The mini FLUX does the same at
laptop scale: ``factor``x downsampling (4: a 32x32 render -> [16, 8, 8], packed by the pipeline into
16 tokens of 64 values), 16 latent channels, and FLUX's normalisation
``z = (latent - shift_factor) * scaling_factor`` with both numbers measured on the training scenes,
so the transformer sees latents of mean 0 and standard deviation 1.

Loss per batch of fresh renders x in [-1, 1] (decoded from a *sampled* latent, so the decoder
learns to draw a crisp scene from a latent that is only roughly right, as the transformer's are):

    L = |x_hat - x|_1 + edge_weight * (|d_h x_hat - d_h x|_1 + |d_w x_hat - d_w x|_1) + kl_weight * KL

The edge term (first differences along height and width) pays for sharp outlines, which decide
whether a star reads as a star. Training seeds come from the training range of
:mod:`~fireflow_edu.mini.scenes`; the held-out curve reads reconstructions of validation scenes with
the package's detector.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..reporting import save_torch
from .batches import SceneBatches, renders, to_unit
from .scenes import SIZE, TRAIN_SEEDS, VALIDATION_SEEDS, random_scene
from .phase import Phase, saved_run
from .train_config import AutoencoderConfig, check_device

CHECKPOINT = "autoencoder_checkpoint.pt"
LATENT_CHANNELS = 16


def build_autoencoder(config: AutoencoderConfig):
    """A fresh AutoencoderKL: log2(factor) downsamplings, widths (w, 2w, 2w, ...), 16 latent channels."""
    from diffusers import AutoencoderKL

    levels = config.factor.bit_length()  # FluxPipeline's scale factor is 2 ** (levels - 1)
    widths = tuple([config.width] + [2 * config.width] * (levels - 1))
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS, layers_per_block=1,
        norm_num_groups=16, down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=widths, sample_size=SIZE,
        scaling_factor=1.0, shift_factor=0.0, use_quant_conv=False, use_post_quant_conv=False)


def render_batch(seeds) -> tuple[torch.Tensor, list]:
    """Renders [B, 3, 32, 32] in [-1, 1] and the scenes of ``seeds``."""
    scenes = [random_scene(int(s)) for s in seeds]
    return renders(scenes), scenes


def autoencoder_loss(vae, x: torch.Tensor, config: AutoencoderConfig, generator: torch.Generator) -> torch.Tensor:
    """The training loss above on a batch ``x`` [B, 3, H, W]."""
    posterior = vae.encode(x).latent_dist
    x_hat = vae.decode(posterior.sample(generator)).sample
    edges = sum((torch.diff(x_hat, dim=d) - torch.diff(x, dim=d)).abs().mean() for d in (2, 3))
    kl = posterior.kl().mean() / x[0].numel()
    return (x_hat - x).abs().mean() + config.edge_weight * edges + config.kl_weight * kl


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3] (values outside [-1, 1] are clamped, as a display would)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def evaluate_autoencoder(vae, num_scenes: int, seeds: range = VALIDATION_SEEDS) -> dict[str, float]:
    """Round trips of held-out renders (posterior mode): PSNR, detector accuracy, mean best shape IoU.

    ``all`` is the share of reconstructions the detector reads fully right; ``iou`` the mean over drawn
    objects of the best template IoU (renders themselves score about 0.98).
    """
    from ..editing.metrics import capped, psnr
    from .detect import check_scene, detect

    was_training = vae.training
    vae.eval()
    checks, ious, psnrs = [], [], []
    for start in range(0, num_scenes, 50):
        x, scenes = render_batch(seeds[start:min(start + 50, num_scenes)])
        images = to_uint8(vae.decode(vae.encode(x.to(vae.device)).latent_dist.mode()).sample)
        reference = to_uint8(x)
        for image, truth, scene in zip(images, reference, scenes):
            checks.append(check_scene(image, scene))
            ious += [o.iou for o in detect(image).objects]
            psnrs.append(capped(psnr(truth, image)))
    vae.train(was_training)
    return {**{key: float(np.mean([c[key] for c in checks])) for key in checks[0]},
            "iou": float(np.mean(ious)), "psnr": float(np.mean(psnrs))}


@torch.no_grad()
def measure_normalisation(vae, num_scenes: int = 2000) -> tuple[float, float]:
    """FLUX's ``shift_factor`` (latent mean) and ``scaling_factor`` (1 / latent std) on training scenes."""
    latents = torch.cat([vae.encode(render_batch(range(i, i + 100))[0].to(vae.device)).latent_dist.mode()
                         for i in range(TRAIN_SEEDS.start, TRAIN_SEEDS.start + num_scenes, 100)])
    return float(latents.mean()), float(1 / latents.std())


def train_autoencoder(config: AutoencoderConfig, out: Path, progress: bool = True, on_eval=None):
    """Train (or resume, from ``out/autoencoder_checkpoint.pt``) and save the autoencoder to ``out``.

    Trains on ``config.device``; the checkpoint loads on any device. Returns the trained AutoencoderKL
    (normalisation measured and set, on that device) and its record: config, minutes of training, steps per
    device, loss every 100 steps and the held-out curve.
    """
    device = check_device(config.device)
    out = Path(out)
    generator = torch.Generator().manual_seed(config.seed)  # on the CPU: the same draws on every device
    torch.manual_seed(config.seed)
    vae = build_autoencoder(config).to(device).train()
    phase = Phase("autoencoder", [vae], config.steps, config.lr, config.warmup, weight_decay=0.0)
    path = out / CHECKPOINT
    saved = saved_run(path, config, holds=("phase", "torch_rng"))
    if saved is not None:
        phase.load(saved["phase"])
        generator.set_state(saved["torch_rng"])

    def save():
        save_torch({"config": asdict(config), "phase": phase.state(), "torch_rng": generator.get_state()}, path)

    with SceneBatches(config.seed, "autoencoder", config.batch_size, config.steps, config.render_workers) as batches:
        phase.run(lambda step: to_unit(batches.get(step)[0]).to(device),
                  lambda x: autoencoder_loss(vae, x, config, generator), device,
                  lambda: evaluate_autoencoder(vae, config.eval_scenes), save, config.eval_every,
                  config.checkpoint_every, on_eval, progress)
    vae.eval()
    shift, scale = measure_normalisation(vae)
    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    vae.save_pretrained(out)
    record = {"config": asdict(config), **phase.record(), "shift_factor": shift, "scaling_factor": scale}
    return vae, record
