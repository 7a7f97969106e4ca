"""The models a command can name, and the options that name them: a Hugging Face id or folder (FLUX or Stable
Diffusion 3), ``--model mini`` (the mini FLUX shipped in the package), or a family's tiny random-weight pipeline
(``--tiny`` FLUX, ``--tiny-sd3``). The one place where the command line names model families, so that
:mod:`fireflow_edu.editing` names none."""

from __future__ import annotations

import sys

from .editing.loading import DEFAULT_MODEL

TINY = {  # option: ("module:builder", what it is)
    "tiny": ("fireflow_edu.flux.tiny:build_tiny_pipeline", "FLUX"),
    "tiny_sd3": ("fireflow_edu.sd3.tiny:build_tiny_sd3_pipeline", "SD3"),
}
SHORTCUTS = {"mini": "fireflow_edu.mini.model:SHIPPED"}  # --model names that stand for a shipped folder


def _resolve(spec: str):
    from importlib import import_module

    module, name = spec.split(":")
    return getattr(import_module(module), name)


def _tiny(args) -> str | None:
    return next((option for option in TINY if getattr(args, option, False)), None)


def pipeline_from_options(args, device=None):
    """The pipeline the options name, loaded straight onto ``device`` (default: CUDA if there is one)."""
    from .editing.loading import load_pipeline

    tiny = _tiny(args)
    if tiny is not None:
        flag = "--" + tiny.replace("_", "-")
        print(f"note: {flag} is a random-weight model: its images are noise. It checks the code path, not "
              "results; for trained results on a CPU use --model mini", file=sys.stderr)
        return _resolve(TINY[tiny][0])().to(device or "cpu")  # built in memory: every rank of a sharded run makes its own
    model = _resolve(SHORTCUTS[args.model]) if args.model in SHORTCUTS else args.model
    return load_pipeline(model, device=device, offload=args.offload, allow_download=args.allow_download,
                         vae_tiling=args.vae_tiling, compile=args.compile)


def model_name(args) -> str:
    """What the options name, for reports."""
    tiny = _tiny(args)
    return f"tiny {TINY[tiny][1]} (random weights: noise images)" if tiny else str(args.model)


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
