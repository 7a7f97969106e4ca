"""Editing subcommands of ``python -m fireflow_edu`` for any model family: edit, reconstruct, batch; and the
model and solver options the other model commands (``bench``, ``piebench``) share."""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

from ..reporting import terminal_progress, write_json
from ..solvers import SOLVERS
from .features import STRATEGY_TERMS
from .images import load_image
from .loading import DEFAULT_MODEL

def _guidance(text: str) -> str | float | list[float]:
    """"auto" stays; "2" -> 2.0; "1,2,2,2" -> a per-step list."""
    if text == "auto":
        return text
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"guidance must be auto, a number or a comma-separated list, got {text!r}")
    return values[0] if len(values) == 1 else values


def _blocks(text: str) -> list[int]:
    """"0-37" or "20,21,22" -> block indices."""
    try:
        if "-" in text:
            first, last = (int(v) for v in text.split("-"))
            return list(range(first, last + 1))
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"blocks must look like 0-37 or 20,21,22, got {text!r}")


def _outputs(args, name: str) -> list[Path]:
    return [args.out / f"{name}.png", args.out / "source.png", args.out / f"{name}.json"]


def _checked_image(args, name: str):
    """Read the input and check the output paths before any model loads; returns the image."""
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder (it will hold {name}.png, source.png, {name}.json)")
    if not args.image.startswith("skimage:"):
        source = Path(args.image).resolve()
        if any(path.resolve() == source for path in _outputs(args, name)):
            raise ValueError(f"--out {args.out} would overwrite the input image {args.image}; choose another folder")
    return load_image(args.image)


def pipeline_from_options(args, device=None):
    """The pipeline the options name, loaded straight onto ``device`` (default: CUDA if there is one)."""
    from .loading import load_pipeline

    if args.tiny or args.tiny_sd3:
        print(f"note: {'--tiny' if args.tiny else '--tiny-sd3'} is a random-weight model: its images are noise. "
              "It checks the code path, not results; for trained results on a CPU use --model mini", file=sys.stderr)
        if args.tiny_sd3:
            from ..sd3.tiny import build_tiny_sd3_pipeline as build
        else:
            from ..flux.tiny import build_tiny_pipeline as build
        return build().to(device or "cpu")  # built in memory: every rank of a sharded run makes its own
    model = args.model
    if model == "mini":
        from ..mini.model import SHIPPED as model
    return load_pipeline(model, device=device, offload=args.offload, allow_download=args.allow_download,
                         vae_tiling=args.vae_tiling, compile=args.compile)


def peak_memory_bytes(device) -> int:
    """Peak CUDA memory allocated, or the process's peak resident memory on CPU."""
    import torch

    if torch.device(device).type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _model_name(args) -> str:
    if args.tiny or args.tiny_sd3:
        return f"tiny {'FLUX' if args.tiny else 'SD3'} (random weights: noise images)"
    return str(args.model)


def _write(args, name: str, result, pipe) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    image_path, source_path, report_path = _outputs(args, name)
    result.image.save(image_path)
    result.source.save(source_path)
    report = {"settings": result.settings, "nfe": result.nfe, "nfe_inversion": result.nfe_inversion,
              "nfe_denoising": result.nfe_denoising, "nfe_branches": result.nfe_branches, "seconds": result.seconds,
              "metrics": result.metrics,
              "feature_cache_bytes": result.cache_bytes, "injections": result.injections,
              "peak_memory_bytes": peak_memory_bytes(pipe._execution_device), "model": _model_name(args)}
    write_json(report_path, report)
    print(json.dumps({k: report[k] for k in ("nfe", "seconds", "metrics")}, indent=2))
    print(f"wrote {image_path}, {source_path} and {report_path}")


def run_edit(args) -> None:
    from .api import edit

    image = _checked_image(args, "edited")
    pipe = pipeline_from_options(args)
    result = edit(pipe, image, args.source_prompt, args.target_prompt, steps=args.steps,
                  inject=args.inject, guidance=args.guidance, method=args.method, strategy=args.strategy,
                  blocks=args.blocks, cache_device="cpu" if args.cache_on_cpu else None, progress=terminal_progress())
    _write(args, "edited", result, pipe)


def run_reconstruct(args) -> None:
    from .api import reconstruct

    image = _checked_image(args, "reconstruction")
    pipe = pipeline_from_options(args)
    result = reconstruct(pipe, image, args.prompt, steps=args.steps, method=args.method,
                         guidance=args.guidance, progress=terminal_progress())
    _write(args, "reconstruction", result, pipe)


def run_batch(args) -> None:
    from .batch import run_cases

    summary = run_cases(args.cases, args.out, lambda device: pipeline_from_options(args, device), steps=args.steps,
                        inject=args.inject, guidance=args.guidance, method=args.method, strategy=args.strategy)
    if summary is not None:
        print(json.dumps(summary, indent=2))


def model_options(parser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=DEFAULT_MODEL,
                       help=f"Hugging Face repo id (from the local cache) or local directory of a FLUX or Stable Diffusion 3 "
                       f"pipeline, or mini for the trained mini FLUX shipped in the package (CPU) (default "
                       f"{DEFAULT_MODEL})")
    tiny = group.add_mutually_exclusive_group()
    tiny.add_argument("--tiny", action="store_true", help="use the tiny random-weight FLUX (CPU, no weights needed)")
    tiny.add_argument("--tiny-sd3", action="store_true",
                      help="use the tiny random-weight Stable Diffusion 3 (CPU, no weights needed)")
    group.add_argument("--offload", action="store_true", help="model CPU offload: fits a ~24 GB GPU, slower")
    group.add_argument("--allow-download", action="store_true",
                       help="let diffusers download missing weights (needs `hf auth login` and the licence accepted)")
    group.add_argument("--vae-tiling", action="store_true", help="encode/decode large images tile by tile")
    group.add_argument("--compile", action="store_true", help="torch.compile the transformer (GPU)")


def solver_options(parser, auto_guidance: str) -> None:
    parser.add_argument("--steps", type=int, default=8, help="solver steps per pass (default 8)")
    parser.add_argument("--method", choices=list(SOLVERS), default="fireflow", help="solver (default fireflow)")
    parser.add_argument("--guidance", type=_guidance, default="auto",
                        help="FLUX guidance: a number or a per-step list like 1,2,2,2 (default auto: "
                        f"{auto_guidance} for guidance-distilled models such as FLUX.1-dev, "
                        "none for FLUX.1-schnell)")


def edit_options(parser) -> None:
    parser.add_argument("--inject", type=int, default=1,
                        help="denoising steps (nearest the noise) that receive stored attention features (default 1)")
    parser.add_argument("--strategy", default="replace_v",
                        help=f"{', '.join(STRATEGY_TERMS)} or a '+' combination (default replace_v)")
    parser.add_argument("--blocks", type=_blocks, default=None,
                        help="single-stream blocks that store/inject, e.g. 0-37 or 20,21 (default all)")


def _edit_command(edit) -> None:
    edit.description = ("Invert IMAGE with the source prompt, denoise with the target prompt, injecting attention "
                        "features; writes edited.png, source.png, edited.json.")
    edit.add_argument("--image", required=True, help="image file, or skimage:chelsea / skimage:astronaut / skimage:coffee")
    edit.add_argument("--source-prompt", required=True, help="describes the image as it is")
    edit.add_argument("--target-prompt", required=True, help="describes the image as it should become")
    solver_options(edit, "2")
    edit_options(edit)
    edit.add_argument("--cache-on-cpu", action="store_true", help="keep stored attention features in CPU memory")
    edit.add_argument("--out", type=Path, default=Path("out/edit"), help="output directory (default out/edit)")
    model_options(edit)
    edit.set_defaults(run=run_edit)


def _reconstruct_command(rec) -> None:
    rec.description = "The paper's reconstruction test: same prompt both ways, no injection."
    rec.add_argument("--image", required=True, help="image file, or skimage:chelsea / skimage:astronaut / skimage:coffee")
    rec.add_argument("--prompt", default="", help="prompt for both passes (default empty)")
    solver_options(rec, "1")
    rec.add_argument("--out", type=Path, default=Path("out/reconstruct"), help="output directory")
    model_options(rec)
    rec.set_defaults(run=run_reconstruct)


def _batch_command(batch) -> None:
    batch.description = ("Each line: {\"image\": ..., \"source_prompt\": ..., \"target_prompt\": ..., optional "
                         "\"mask\"}. Run under `accelerate launch -m fireflow_edu batch ...` to shard.")
    batch.add_argument("--cases", type=Path, required=True, help="JSONL file of cases")
    batch.add_argument("--out", type=Path, required=True, help="output directory")
    solver_options(batch, "2")
    edit_options(batch)
    model_options(batch)
    batch.set_defaults(run=run_batch)


def configure(name: str, parser) -> None:
    """Arguments of the editing command ``name`` (edit, reconstruct or batch)."""
    {"edit": _edit_command, "reconstruct": _reconstruct_command, "batch": _batch_command}[name](parser)
