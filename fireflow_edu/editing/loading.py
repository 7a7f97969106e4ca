"""Loading pipelines (FLUX, Stable Diffusion 3): from a local directory or the Hugging Face cache, offline by
default. Any pipeline class with an adapter in :data:`fireflow_edu.editing.boundary.ADAPTERS` loads."""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path

import torch

from .boundary import ADAPTERS

DEFAULT_MODEL = "black-forest-labs/FLUX.1-dev"


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(fragment in record.getMessage() for fragment in self.fragments)


@contextmanager
def quiet_loading():
    """Silence, for this block only, the notes that are ours to silence while FLUX pipelines load.

    - transformers' "requires torchvision" notes, raised when diffusers imports FLUX's image
      processors (used only for IP-adapters, never here);
    - diffusers' "Expected types for vae" note for the mini FLUX's own lossless VAE;
    - loading and saving progress bars, when stderr is not a terminal (logs, notebooks under CI).
    """
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    filters = [(logging.getLogger("transformers.utils.import_utils"), _DropMessages("requires torchvision")),
               (logging.getLogger("diffusers.pipelines.pipeline_utils"), _DropMessages("PixelShuffleVAE"))]
    for logger, drop in filters:
        logger.addFilter(drop)
    bars = [(module, module.is_progress_bar_enabled()) for module in (diffusers_logging, transformers_logging)]
    if not sys.stderr.isatty():
        for module, _ in bars:
            module.disable_progress_bar()
    try:
        yield
    finally:
        for logger, drop in filters:
            logger.removeFilter(drop)
        for module, was_enabled in bars:
            if was_enabled:
                module.enable_progress_bar()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def missing_weights_message(model: str, error: Exception) -> str:
    return (
        f"Could not load weights for {model!r} ({type(error).__name__}: {error}).\n"
        "fireflow_edu loads offline by default, from a local directory or the Hugging Face cache. To get them:\n"
        "  1. FLUX.1-dev is gated (non-commercial licence): accept it on its Hugging Face model page;\n"
        "  2. run `hf auth login` with a token of that account;\n"
        "  3. run once with `load_pipeline(..., allow_download=True)` (or `--allow-download` on the command line)\n"
        "     to fill the cache, or `hf download black-forest-labs/FLUX.1-dev --local-dir DIR` and pass DIR.\n"
        "Stable Diffusion 3 / 3.5 (stabilityai/...) are gated the same way.\n"
        "Without weights, `fireflow_edu.flux.tiny_pipeline()` (or `--tiny`; `--tiny-sd3` for SD3) runs every step "
        "on a tiny random model."
    )


def import_own_components(folder: Path) -> None:
    """Import the modules of this package that a saved pipeline names as component libraries.

    diffusers loads a component class only from a module already imported (it will not run code because a
    repository names it); the mini FLUX's ``PixelShuffleVAE`` lives in ``fireflow_edu.mini.vae``, which the
    lazy command line does not otherwise import. Only ``fireflow_edu`` modules are imported here.
    """
    index = folder / "model_index.json"
    if not index.is_file():
        return
    for entry in json.loads(index.read_text()).values():
        if isinstance(entry, list) and entry and str(entry[0]).split(".")[0] == __package__.split(".")[0]:
            import_module(entry[0])


def load_pipeline(model: str | Path = DEFAULT_MODEL, device: str | torch.device | None = None,
                  dtype: torch.dtype | None = None, offload: bool = False, *, allow_download: bool = False,
                  vae_tiling: bool = False, compile: bool = False):
    """Load a FluxPipeline or StableDiffusion3Pipeline ready for :func:`~fireflow_edu.editing.api.edit`.

    Args:
        model: a Hugging Face repo id (looked up in the local cache) or a local directory
            holding a ``save_pretrained`` pipeline.
        device: default CUDA if available, else CPU.
        dtype: default bfloat16 on CUDA, float32 on CPU.
        offload: model CPU offload (accelerate): each component moves to the GPU only while it
            runs, so FLUX.1-dev fits in ~24 GB at some cost in speed. Needs CUDA.
        allow_download: let ``from_pretrained`` reach the Hub (off: offline, cache or path only).
        vae_tiling: decode/encode large images tile by tile (``pipe.vae.enable_tiling()``).
        compile: ``torch.compile`` the transformer (first call slow, later calls faster on GPU).

    Raises ``FileNotFoundError`` with instructions when the weights are not available.
    """
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    if offload and device.type != "cuda":
        raise ValueError("offload=True moves components to a CUDA device on demand; it needs device='cuda'")
    local = Path(model).expanduser()
    source = str(local) if local.is_dir() else str(model)
    if local.is_dir():
        import_own_components(local)
    try:
        with quiet_loading():
            from diffusers import DiffusionPipeline

            # the saved model_index.json names the pipeline class
            pipe = DiffusionPipeline.from_pretrained(source, dtype=dtype, local_files_only=not allow_download)
    except (OSError, ValueError) as error:  # diffusers reports missing files and gated repos as OSError
        raise FileNotFoundError(missing_weights_message(str(model), error)) from error
    if type(pipe).__name__ not in ADAPTERS:
        raise ValueError(f"{model} holds a {type(pipe).__name__}; supported pipelines: {', '.join(ADAPTERS)}")
    if offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if vae_tiling:
        pipe.vae.enable_tiling()
    if compile:
        pipe.transformer.compile(fullgraph=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe
