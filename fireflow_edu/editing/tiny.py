"""The offline pieces every tiny model builds on (FLUX's, Stable Diffusion 3's, the mini FLUX's): word-level
tokenizers built in memory, CLIP and T5 text encoders of any width, a tiny 8x AutoencoderKL, and the
save-then-load round trip that runs the real loading code on them."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

# Words the tiny tokenizers know; anything else maps to [UNK] (still a valid prompt).
VOCABULARY = tuple((
    "a an the of on in with and photo painting picture image drawing cat dog bird horse cake cherries house tree "
    "car flower man woman girl boy person face hat glasses football rainbow sculpture origami cartoon building "
    "red green blue black white yellow orange purple brown gray pink small big large sitting standing running "
    "smiling wall table grass sky background street beach snow forest room wearing holding top"
).split())
SPECIAL = ("[PAD]", "[UNK]", "[EOS]")


def word_tokenizer(vocabulary: tuple[str, ...], model_max_length: int):
    """A lower-casing word-level tokenizer over ``vocabulary`` that appends [EOS], built in memory."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL + tuple(vocabulary))}
    core = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="$A [EOS]", special_tokens=[("[EOS]", vocab["[EOS]"])])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]",
                                   model_max_length=model_max_length)


def clip_text_encoder(tokenizer, dim: int, projection: bool = False):
    """A 2-layer CLIP text encoder of width ``dim`` over ``tokenizer``'s words; ``projection``: with the text
    projection Stable Diffusion 3 pools through (``CLIPTextModelWithProjection``)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    eos = tokenizer.eos_token_id
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=dim, intermediate_size=2 * dim, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=77, projection_dim=dim, eos_token_id=eos,
                            bos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def t5_text_encoder(tokenizer, dim: int):
    """A 2-layer T5 encoder of width ``dim`` over ``tokenizer``'s words."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=dim, d_kv=dim // 4, d_ff=2 * dim, num_layers=2,
                                   num_heads=4, pad_token_id=tokenizer.pad_token_id,
                                   eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=0))


def build_text_side(vocabulary: tuple[str, ...], dim: int, t5_length: int) -> dict:
    """FLUX's text side: CLIP and T5 text encoders of width ``dim`` with word-level tokenizers over ``vocabulary``."""
    clip_tokenizer, t5_tokenizer = word_tokenizer(vocabulary, 77), word_tokenizer(vocabulary, t5_length)
    return {"text_encoder": clip_text_encoder(clip_tokenizer, dim), "tokenizer": clip_tokenizer,
            "text_encoder_2": t5_text_encoder(t5_tokenizer, dim), "tokenizer_2": t5_tokenizer}


def tiny_vae():
    """An AutoencoderKL with FLUX's 8x downsampling, 4 latent channels and FLUX's scaling and shift."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16), sample_size=64, scaling_factor=1.5035, shift_factor=0.0609,
        use_quant_conv=False, use_post_quant_conv=False)


def saved_and_loaded(pipe, path: str | Path | None = None):
    """``pipe`` saved with ``save_pretrained`` and loaded back with :func:`~fireflow_edu.editing.loading.load_pipeline`
    (fp32, CPU), so the real loading path runs; ``path``: where (a temporary folder by default, removed after)."""
    from .loading import load_pipeline, quiet_loading

    with tempfile.TemporaryDirectory(prefix="tiny-") as tmp:
        target = path if path is not None else tmp
        with quiet_loading():
            pipe.save_pretrained(target)
        return load_pipeline(target, device="cpu", dtype=torch.float32)
