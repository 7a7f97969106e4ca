"""Editing subcommands of ``python -m fireflow_edu`` for any model family: edit, reconstruct, batch; and the
editing-algorithm and solver options the other model commands (``piebench``) share. Which model the options name
is :mod:`fireflow_edu.models`' business, so nothing here names a family."""

from __future__ import annotations

import argparse
import json
import resource
from pathlib import Path

from ..models import model_name, model_options, pipeline_from_options
from ..reporting import terminal_progress, write_json
from ..solvers import SOLVERS
from .algorithms import ALGORITHMS, check_settings
from .features import STRATEGY_TERMS
from .images import load_image
from .masks import MASK_MODES, MASK_RULES


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


def peak_memory_bytes(device) -> int:
    """Peak CUDA memory allocated, or the process's peak resident memory on CPU."""
    import torch

    if torch.device(device).type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _write(args, name: str, result, pipe) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    image_path, source_path, report_path = _outputs(args, name)
    result.image.save(image_path)
    result.source.save(source_path)
    report = {"settings": result.settings, "nfe": result.nfe, "nfe_inversion": result.nfe_inversion,
              "nfe_denoising": result.nfe_denoising, "nfe_branches": result.nfe_branches, "seconds": result.seconds,
              "metrics": result.metrics,
              "feature_cache_bytes": result.cache_bytes, "injections": result.injections,
              "peak_memory_bytes": peak_memory_bytes(pipe._execution_device), "model": model_name(args)}
    write_json(report_path, report)
    print(json.dumps({k: report[k] for k in ("nfe", "seconds", "metrics")}, indent=2))
    print(f"wrote {image_path}, {source_path} and {report_path}")


# options named as the algorithms' settings; None (every default) leaves the chosen algorithm's own
ALGORITHM_OPTIONS = ("steps", "guidance", "source_guidance", "method", "inject", "strategy", "blocks", "mask_rule",
                     "mask_mode", "gamma", "eta", "start", "stop", "n_max", "n_avg", "n_min", "seed")


def read_mask(spec: str):
    """A mask image as a boolean [H, W] array: nonzero pixels may change."""
    import numpy as np

    return np.asarray(load_image(spec).convert("L")) > 0


def algorithm_settings(args, masked: bool = False) -> dict:
    """The settings the options give the chosen algorithm, checked against what it takes before any model loads
    (``masked``: each edit gets a mask, from --mask or from its case)."""
    settings = {name: getattr(args, name) for name in ALGORITHM_OPTIONS if getattr(args, name, None) is not None}
    if getattr(args, "cache_on_cpu", False):
        settings["cache_device"] = "cpu"
    for name in ("mask_rule", "mask_mode"):
        if name in settings and not masked:
            raise ValueError(f"--{name.replace('_', '-')} decides how a mask is used: give a mask too")
    check_settings(args.algorithm, {**settings, "mask": None} if masked else settings)
    return settings


def run_edit(args) -> None:
    from .algorithms import run_algorithm

    settings = algorithm_settings(args, masked=args.mask is not None)
    if args.mask is not None:
        settings["mask"] = read_mask(args.mask)
    image = _checked_image(args, "edited")
    pipe = pipeline_from_options(args)
    result = run_algorithm(args.algorithm, pipe, image, args.source_prompt, args.target_prompt,
                           progress=terminal_progress(), **settings)
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

    settings = algorithm_settings(args)
    summary = run_cases(args.cases, args.out, lambda device: pipeline_from_options(args, device),
                        algorithm=args.algorithm, **settings)
    if summary is not None:
        print(json.dumps(summary, indent=2))


def algorithm_options(parser, mask: str | None = None) -> None:
    """--algorithm and every algorithm's settings; each defaults to the chosen algorithm's own. ``mask``: how the
    command's edits get masks, "image" (--mask, an image for the one edit), "cases" (each case's own), or None."""
    parser.add_argument("--algorithm", choices=list(ALGORITHMS), default="fireflow",
                        help="fireflow: invert, then denoise injecting attention features (any --method); "
                        "rf_inversion: controlled ODEs both ways (Rout et al.); flowedit: inversion-free "
                        "(Kulikov et al.) (default fireflow)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per pass (default: fireflow 8, rf_inversion 28, flowedit the authors' for the "
                        "family: FLUX 28, SD3 50)")
    parser.add_argument("--guidance", type=_guidance, default=None,
                        help="guidance of the edit (the target side): a number, or for fireflow on FLUX a per-step "
                        "list like 1,2,2,2 (default auto: each algorithm's own for the model, e.g. fireflow 2 on "
                        "FLUX.1-dev; none for FLUX.1-schnell)")
    parser.add_argument("--source-guidance", type=_guidance, default=None,
                        help="guidance on the source side: fireflow's and rf_inversion's inversion, flowedit's "
                        "source velocity (default auto)")
    parser.add_argument("--seed", type=int, default=None, help="rf_inversion's noise sample, flowedit's noise draws")
    fireflow = parser.add_argument_group("fireflow (inversion + attention-feature injection)")
    fireflow.add_argument("--method", choices=list(SOLVERS), default=None, help="solver (default fireflow)")
    fireflow.add_argument("--inject", type=int, default=None,
                          help="denoising steps (nearest the noise) that receive stored attention features (default 1)")
    fireflow.add_argument("--strategy", default=None,
                          help=f"{', '.join(STRATEGY_TERMS)} or a '+' combination (default replace_v)")
    fireflow.add_argument("--blocks", type=_blocks, default=None,
                          help="single-stream blocks that store/inject, e.g. 0-37 or 20,21 (default all)")
    if mask == "image":
        fireflow.add_argument("--mask", default=None,
                              help="image of the region that may change (nonzero pixels), at the image's size")
    if mask is not None:
        fireflow.add_argument("--mask-rule", choices=MASK_RULES, default=None,
                              help="when blending, a latent cell may change if any (default), half or all of its "
                              "pixels are in the mask")
        fireflow.add_argument("--mask-mode", choices=MASK_MODES, default=None,
                              help="blend: keep the latents outside the mask on the inversion's trajectory (default); "
                              "paste: the unmasked edit with the source's pixels outside the mask; blend+paste: both; "
                              "blend+fit: the blend, its latents then fitted to the source's pixels outside the mask")
    rf = parser.add_argument_group("rf_inversion")
    rf.add_argument("--gamma", type=float, default=None, help="inversion's pull toward the noise sample (default 0.5)")
    rf.add_argument("--eta", type=float, default=None, help="edit's pull toward the source (default 1.0)")
    rf.add_argument("--start", type=float, default=None, help="eta's window: first fraction of the steps (default 0)")
    rf.add_argument("--stop", type=float, default=None, help="eta's window: end, a fraction of the steps (default 0.25)")
    flowedit = parser.add_argument_group("flowedit")
    flowedit.add_argument("--n-max", type=int, default=None,
                          help="steps that run from the data end (default FLUX 24, SD3 33)")
    flowedit.add_argument("--n-avg", type=int, default=None, help="noise draws averaged per step (default 1)")
    flowedit.add_argument("--n-min", type=int, default=None, help="last steps sampled plainly (default 0)")


def _edit_command(edit) -> None:
    edit.description = ("Edit IMAGE from the source prompt to the target prompt with an editing algorithm "
                        "(FireFlow's recipe by default); writes edited.png, source.png, edited.json.")
    edit.add_argument("--image", required=True, help="image file, or skimage:chelsea / skimage:astronaut / skimage:coffee")
    edit.add_argument("--source-prompt", required=True, help="describes the image as it is")
    edit.add_argument("--target-prompt", required=True, help="describes the image as it should become")
    algorithm_options(edit, mask="image")
    edit.add_argument("--cache-on-cpu", action="store_true", help="keep stored attention features in CPU memory")
    edit.add_argument("--out", type=Path, default=Path("out/edit"), help="output directory (default out/edit)")
    model_options(edit)
    edit.set_defaults(run=run_edit)


def _reconstruct_command(rec) -> None:
    rec.description = "The paper's reconstruction test: same prompt both ways, no injection."
    rec.add_argument("--image", required=True, help="image file, or skimage:chelsea / skimage:astronaut / skimage:coffee")
    rec.add_argument("--prompt", default="", help="prompt for both passes (default empty)")
    rec.add_argument("--steps", type=int, default=8, help="solver steps per pass (default 8)")
    rec.add_argument("--method", choices=list(SOLVERS), default="fireflow", help="solver (default fireflow)")
    rec.add_argument("--guidance", type=_guidance, default="auto",
                     help="FLUX guidance: a number or a per-step list like 1,2,2,2 (default auto: 1 for "
                     "guidance-distilled models such as FLUX.1-dev, none for FLUX.1-schnell)")
    rec.add_argument("--out", type=Path, default=Path("out/reconstruct"), help="output directory")
    model_options(rec)
    rec.set_defaults(run=run_reconstruct)


def _batch_command(batch) -> None:
    batch.description = ("Each line: {\"image\": ..., \"source_prompt\": ..., \"target_prompt\": ..., optional "
                         "\"id\", \"mask\"}. Run under `accelerate launch -m fireflow_edu batch ...` to shard.")
    batch.add_argument("--cases", type=Path, required=True, help="JSONL file of cases")
    batch.add_argument("--out", type=Path, required=True, help="output directory")
    algorithm_options(batch)
    model_options(batch)
    batch.set_defaults(run=run_batch)


def configure(name: str, parser) -> None:
    """Arguments of the editing command ``name`` (edit, reconstruct or batch)."""
    {"edit": _edit_command, "reconstruct": _reconstruct_command, "batch": _batch_command}[name](parser)
