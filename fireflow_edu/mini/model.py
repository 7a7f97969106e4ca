"""The mini FLUX: a genuine diffusers FluxPipeline small enough to train on a laptop CPU.

FluxTransformer2DModel (2 double-stream + 6 single-stream blocks, 4 heads x 32), CLIP and T5 text
encoders of width 64 with word-level tokenizers over the scene grammar (the shipped model keeps them at their
initial weights, as FLUX keeps its pretrained ones frozen), and an autoencoder, in one of two designs:

- **latent** (the shipped one, as FLUX itself): a trained ``AutoencoderKL`` with 4x downsampling and 16
  latent channels (:mod:`fireflow_edu.mini.autoencoder`): a 32x32 render becomes a [16, 8, 8] latent, which
  the pipeline packs into 16 tokens of 64 values. The decoder draws the crisp outlines; the transformer
  decides what goes where.
- **pixel** (the earlier design, kept for comparison): :class:`~fireflow_edu.mini.vae.PixelShuffleVAE`, an
  exactly invertible rearrangement, so the transformer draws every pixel of 64 tokens of 4x4 RGB patches.

The shipped model is a mini FLUX.1-dev: its transformer has FLUX.1-dev's guidance embedding, learned by
distilling classifier-free guidance (:mod:`fireflow_edu.mini.train`), so ``guidance="auto"`` means what it
means for FLUX.1-dev (1 to invert, 2 to edit and generate).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# package data, so a wheel install finds it too (files() is a real folder for any non-zip install); heavy
# imports live in the functions, so the CLI's help can name this folder without loading torch
SHIPPED = Path(str(files("fireflow_edu.mini") / "pretrained"))
TEXT_DIM = 64
MAX_WORDS = 16  # the longest caption has 13 words + [EOS]
TRANSFORMER = dict(patch_size=1, num_layers=2, num_single_layers=6, attention_head_dim=32, num_attention_heads=4,
                   joint_attention_dim=TEXT_DIM, pooled_projection_dim=TEXT_DIM, axes_dims_rope=(8, 12, 12))
# what every mini FLUX learned (fireflow_edu.flux.known_inputs): the scene grammar's words, 32x32 renders
KNOWN_INPUTS = {"image_size": [32, 32], "vocabulary": "closed"}


def build_mini_pipeline(seed: int = 0, autoencoder: str | Path | None = None, text_encoders: str | Path | None = None):
    """A freshly initialised mini FLUX pipeline (fp32, CPU), seeded: a teacher, without guidance embedding.

    ``autoencoder``: a trained ``AutoencoderKL`` folder (``mini-autoencoder``'s output, or a mini FLUX's
    ``vae/``) for the latent design; None for the pixel design. ``text_encoders``: a folder holding
    ``text_encoder/`` and ``text_encoder_2/`` (``mini-text``'s output, or a mini FLUX's own) to start from
    instead of random weights.
    """
    import torch
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    from ..editing.tiny import build_text_side
    from ..flux.tiny import flux_pipeline_class, flux_scheduler
    from .scenes import VOCABULARY
    from .vae import PixelShuffleVAE

    if autoencoder is not None and not (Path(autoencoder) / "config.json").is_file():
        raise ValueError(f"--autoencoder {autoencoder} holds no config.json; give a folder written by "
                         "mini-autoencoder, or a mini FLUX's vae/ folder")
    vae = PixelShuffleVAE(factor=2) if autoencoder is None else AutoencoderKL.from_pretrained(autoencoder)
    torch.manual_seed(seed)
    text_side = build_text_side(VOCABULARY, TEXT_DIM, t5_length=MAX_WORDS)
    if text_encoders is not None:
        text_side.update(load_text_encoders(text_encoders))
    transformer = FluxTransformer2DModel(in_channels=4 * vae.config.latent_channels, guidance_embeds=False,
                                         **TRANSFORMER)
    return flux_pipeline_class()(scheduler=flux_scheduler(), vae=vae.eval().requires_grad_(False),
                                 transformer=transformer, **text_side)


def load_text_encoders(folder: str | Path) -> dict:
    """``text_encoder`` and ``text_encoder_2`` saved in ``folder``, checked against the mini's vocabulary and width."""
    from transformers import CLIPTextModel, T5EncoderModel

    from ..editing.tiny import SPECIAL
    from .scenes import VOCABULARY

    folder = Path(folder)
    missing = [name for name in ("text_encoder", "text_encoder_2") if not (folder / name / "config.json").is_file()]
    if missing:
        raise ValueError(f"--text-encoders {folder} lacks {' and '.join(missing)}/; give a folder written by "
                         "mini-text, or a mini FLUX's own folder")
    loaded = {"text_encoder": CLIPTextModel.from_pretrained(folder / "text_encoder"),
              "text_encoder_2": T5EncoderModel.from_pretrained(folder / "text_encoder_2")}
    for name, model in loaded.items():
        if model.get_input_embeddings().weight.shape != (len(SPECIAL) + len(VOCABULARY), TEXT_DIM):
            raise ValueError(f"{folder / name} has {tuple(model.get_input_embeddings().weight.shape)} word "
                             f"embeddings; the mini's words and width need {(len(SPECIAL) + len(VOCABULARY), TEXT_DIM)}")
    return loaded


def save_mini_pipeline(pipe, folder: str | Path) -> None:
    """``pipe.save_pretrained(folder)`` and the ``known_inputs.json`` that lets editing check prompts and sizes."""
    from ..flux.known_inputs import FILE
    from ..reporting import write_json

    pipe.save_pretrained(folder)
    write_json(Path(folder) / FILE, KNOWN_INPUTS)


def load_mini_pipeline(path: str | Path = SHIPPED, device: str = "cpu"):
    """The trained mini FLUX shipped inside the package (or another ``save_pretrained`` folder), float32 on
    ``device``."""
    import torch

    from ..editing.loading import load_pipeline

    return load_pipeline(path, device=device, dtype=torch.float32)
