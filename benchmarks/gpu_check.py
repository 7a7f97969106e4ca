"""The GPU path end to end in one go, on a random-weight FLUX.1-dev-architecture pipeline (no gated weights).

    python benchmarks/gpu_check.py --out benchmarks/gpu_check_<card>.json      # a CUDA GPU, bf16 (a few minutes)
    python benchmarks/gpu_check.py --tiny --out out/gpu_check_tiny.json      # the same steps on the tiny FLUX, CPU

1. **edit**: generate a 512x512 source, then one FireFlow 8-step edit (V injection in 1 step, 18 NFE) through
   the public ``edit``, with text encoding and VAE; its transformer phases against 18 single transformer calls.
2. **bench**: ``run_benchmark`` (the ``bench`` command): Euler 28+28, RF-Solver 15, FireFlow 8 and 15,
   RF-Inversion 28+28 and FlowEdit (28 steps, n_max 24) at 512^2 and 1024^2, transformer time only. Targets: an 8-step FireFlow edit within 1.3x of 18 single calls and at
   least 3x faster than Euler 28+28.
3. **piebench**: a 4-case PIE-Bench folder of generated images (``.jpg``, as the real benchmark) through
   ``run_piebench`` with the scorer on the GPU (metrics whose weights are absent are reported absent).

The pipeline: FLUX.1-dev's transformer (11.9B parameters) and VAE (16 latent channels) at full size with random
weights; text encoders of FLUX's widths (CLIP 768, T5 4096) but one layer each, since their cost is the same
for every solver. Images are noise: this measures speed and checks the code path, not quality.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

FLUX_VAE = dict(in_channels=3, out_channels=3, latent_channels=16, layers_per_block=2, norm_num_groups=32,
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                block_out_channels=(128, 256, 512, 512), scaling_factor=0.3611, shift_factor=0.1159,
                use_quant_conv=False, use_post_quant_conv=False)
PROMPTS = [("a photo of a cat", "a photo of a dog"), ("a red car on a street", "a blue car on a street"),
           ("a house in the snow", "a house in the forest"), ("a man wearing a hat", "a man wearing glasses")]


def random_flux_dev_pipeline(device: str):
    """FLUX.1-dev's transformer and VAE with random bf16 weights, built on ``device``; shallow text encoders."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from fireflow_edu.flux.benchmark import random_transformer
    from fireflow_edu.editing.tiny import SPECIAL, VOCABULARY, word_tokenizer
    from fireflow_edu.flux.tiny import flux_pipeline_class, flux_scheduler

    clip_tokenizer, t5_tokenizer = word_tokenizer(VOCABULARY, 77), word_tokenizer(VOCABULARY, 512)
    words = len(SPECIAL) + len(VOCABULARY)
    eos, pad = clip_tokenizer.eos_token_id, clip_tokenizer.pad_token_id
    with torch.device(device):
        clip = CLIPTextModel(CLIPTextConfig(vocab_size=words, hidden_size=768, intermediate_size=3072,
                                            num_hidden_layers=1, num_attention_heads=12, max_position_embeddings=77,
                                            eos_token_id=eos, bos_token_id=eos, pad_token_id=pad))
        t5 = T5EncoderModel(T5Config(vocab_size=words, d_model=4096, d_kv=64, d_ff=10240, num_layers=1,
                                     num_heads=64, pad_token_id=pad, eos_token_id=eos, decoder_start_token_id=0))
        vae = AutoencoderKL(**FLUX_VAE)
    pipe = flux_pipeline_class()(scheduler=flux_scheduler(), vae=vae, transformer=random_transformer(device),
                                 text_encoder=clip, tokenizer=clip_tokenizer, text_encoder_2=t5,
                                 tokenizer_2=t5_tokenizer)
    return pipe.to(device, torch.bfloat16)


def check_edit(pipe, size: int) -> dict:
    """One default FireFlow edit of a generated image, and 18 single transformer calls at the same size."""
    from fireflow_edu.editing import edit, generate
    from fireflow_edu.flux.benchmark import time_single_call

    source, _ = generate(pipe, PROMPTS[0][0], size, size, seed=0)
    edit(pipe, source, *PROMPTS[0], progress=False)  # warm-up
    result = edit(pipe, source, *PROMPTS[0], progress=False)
    single = time_single_call(pipe.transformer, size, size, text_tokens=pipe.tokenizer_2.model_max_length)
    transformer_seconds = result.seconds["invert"] + result.seconds["denoise"]
    return {"size": size, "nfe": result.nfe, "seconds": result.seconds, "single_call_seconds": single,
            "transformer_seconds_vs_18_calls": transformer_seconds / (18 * single)}


def check_piebench(pipe, size: int, folder: Path) -> dict:
    """Four generated images as a PIE-Bench folder (.jpg, a centre mask each), edited and scored on the device."""
    from fireflow_edu.editing import generate
    from fireflow_edu.piebench.harness import encode_mask, run_piebench
    from fireflow_edu.piebench.metrics import PieBenchScorer

    mapping = {}
    mask = np.zeros((size, size), bool)
    mask[size // 4:3 * size // 4, size // 4:3 * size // 4] = True
    for i, (source, target) in enumerate(PROMPTS):
        path = f"generated/{i:012d}.jpg"
        (folder / "data" / "annotation_images" / path).parent.mkdir(parents=True, exist_ok=True)
        generate(pipe, source, size, size, seed=i)[0].save(folder / "data" / "annotation_images" / path)
        mapping[f"{i:012d}"] = {"image_path": path, "original_prompt": source, "editing_prompt": target,
                                "editing_instruction": target, "editing_type_id": "1", "blended_word": "",
                                "mask": encode_mask(mask)}
    (folder / "data" / "mapping_file.json").write_text(json.dumps(mapping))
    start = time.perf_counter()
    summary = run_piebench(folder / "data", folder / "run", lambda device: pipe, PieBenchScorer)
    return {"seconds": time.perf_counter() - start, "summary": summary}


def main(argv: list[str]) -> int:
    import diffusers
    import transformers

    from fireflow_edu.flux.benchmark import format_benchmark, run_benchmark
    from fireflow_edu.flux.tiny import build_tiny_pipeline

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="write the results JSON here")
    parser.add_argument("--tiny", action="store_true", help="the tiny random FLUX on the CPU (checks the script)")
    args = parser.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        parser.error("needs a CUDA GPU (use --tiny to run the same steps on a CPU)")
    start = time.perf_counter()
    pipe = build_tiny_pipeline() if args.tiny else random_flux_dev_pipeline("cuda")
    edit_size, bench_sizes, text_tokens = (64, [64], 16) if args.tiny else (512, [512, 1024], 512)
    results = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() and not args.tiny
               else platform.processor() or "cpu",
               "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                            "transformers": transformers.__version__, "python": platform.python_version()},
               "pipeline": "tiny FLUX (CPU)" if args.tiny else "random-weight FLUX.1-dev architecture, bf16",
               "build_seconds": time.perf_counter() - start}
    results["edit"] = check_edit(pipe, edit_size)
    print(json.dumps(results["edit"], indent=2), flush=True)
    results["bench"] = run_benchmark(pipe.transformer, sizes=bench_sizes, repeats=1 if args.tiny else 2,
                                     text_tokens=text_tokens, progress=False)
    print(format_benchmark(results["bench"]), flush=True)
    results["piebench"] = check_piebench(pipe, edit_size, args.out.parent / f"{args.out.stem}_piebench")
    print(json.dumps(results["piebench"]["summary"]["all"], indent=2), flush=True)
    results["total_seconds"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} ({results['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
