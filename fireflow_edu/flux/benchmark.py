"""Edit-speed benchmark: transformer time per edit for Euler 28+28, RF-Solver 15, FireFlow 8 and 15, and FireFlow's
peers RF-Inversion 28+28 and FlowEdit (28 steps, n_max 24).

An edit is timed as the paper's Table 5 counts it: for the inversion-based recipe, inversion plus denoising with
attention-feature storing and injection (replace_v, inject 1); for RF-Inversion its two controlled Euler passes;
for FlowEdit its n_max steps of two calls each; on packed latents of the given image size with 512 text tokens. Text encoders and the VAE are left
out (they cost the same for every solver). ``random_transformer`` builds a
FLUX.1-dev-architecture transformer with random weights, so any GPU can time it
without the gated weights; the numbers are speed, not image quality.
"""

from __future__ import annotations

import platform
import statistics

import torch
from tqdm import tqdm

from ..editing.features import AttentionFeatures, resolve_blocks
from ..editing.flowedit import FlowEditVelocity
from ..editing.rf_inversion import ControlledVelocity, eta_window
from ..schedules import flux_schedule
from ..solvers import integrate
from ..timing import Clock
from .adapter import single_block_hooks
from .velocity import FluxVelocity, PromptEmbedding, solve_pass

# (label, algorithm, solver, steps): the paper's Table 5, then the peers at their authors' FLUX settings
CONFIGS = (("euler_28", "fireflow", "euler", 28), ("rf_solver_15", "fireflow", "rf_solver", 15),
           ("fireflow_8", "fireflow", "fireflow", 8), ("fireflow_15", "fireflow", "fireflow", 15),
           ("rf_inversion_28", "rf_inversion", "euler", 28), ("flowedit_28", "flowedit", "euler", 28))
FLUX_DEV_ARCHITECTURE = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38,
                             attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                             pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56))


def random_transformer(device: str | torch.device = "cuda", dtype: torch.dtype = torch.bfloat16, **architecture):
    """A FluxTransformer2DModel with random weights, built directly on ``device`` in ``dtype``.

    Defaults to the FLUX.1-dev architecture (11.9B parameters, ~24 GB in bf16).
    """
    from diffusers import FluxTransformer2DModel

    config = {**FLUX_DEV_ARCHITECTURE, **architecture}
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build in the target dtype: an fp32 FLUX would need 48 GB first
    try:
        with torch.device(device):
            model = FluxTransformer2DModel(**config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval().requires_grad_(False)


def _inputs(transformer, height: int, width: int, text_tokens: int, seed: int = 0):
    from .tiny import flux_pipeline_class

    device, dtype = transformer.device, transformer.dtype
    g = torch.Generator(device="cpu").manual_seed(seed)
    config = transformer.config
    tokens_h, tokens_w = height // 16, width // 16
    prompt = PromptEmbedding(
        prompt_embeds=torch.randn(1, text_tokens, config.joint_attention_dim, generator=g).to(device, dtype),
        pooled=torch.randn(1, config.pooled_projection_dim, generator=g).to(device, dtype),
        text_ids=torch.zeros(text_tokens, 3, device=device, dtype=dtype),
    )
    img_ids = flux_pipeline_class()._prepare_latent_image_ids(1, tokens_h, tokens_w, device, dtype)
    latents = torch.randn(1, tokens_h * tokens_w, config.in_channels, generator=g).to(device)
    return prompt, img_ids, latents


def _injected_edit(transformer, latents, prompt, img_ids, sampling, method: str) -> int:
    """FireFlow's recipe: inversion and denoising with replace_v injection in 1 step; returns the NFE."""
    features = AttentionFeatures("replace_v", 1, resolve_blocks(None, len(transformer.single_transformer_blocks)))
    with single_block_hooks(transformer, features):
        inverted = solve_pass(transformer, latents, prompt, img_ids, sampling.flip(0), method, 1.0, features)
        denoised = solve_pass(transformer, inverted.x, prompt, img_ids, sampling, method, 2.0, features)
    return inverted.nfe + denoised.nfe


def _rf_inversion(transformer, latents, prompt, img_ids, sampling, method: str) -> int:
    """RF-Inversion's controlled passes at the community pipeline's settings; returns the NFE."""
    steps = len(sampling) - 1
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(1)).to(latents.device)
    inversion = ControlledVelocity(FluxVelocity(transformer, prompt, img_ids, sampling.flip(0), 0.0), noise, 1.0,
                                   [0.5] * steps)
    inverted = integrate(inversion, latents, sampling.flip(0), method)
    editing = ControlledVelocity(FluxVelocity(transformer, prompt, img_ids, sampling, 3.5), latents, 0.0,
                                 eta_window(steps, 1.0, 0.0, 0.25))
    return inverted.nfe + integrate(editing, inverted.x, sampling, method).nfe


def _flowedit(transformer, latents, prompt, img_ids, sampling, method: str, n_max: int = 24) -> int:
    """FlowEdit's n_max coupled steps at its authors' FLUX guidance; returns the NFE (two calls a step)."""
    grid = sampling[len(sampling) - 1 - n_max:]
    field = FlowEditVelocity(FluxVelocity(transformer, prompt, img_ids, grid, 1.5),
                             FluxVelocity(transformer, prompt, img_ids, grid, 5.5), latents, 1,
                             torch.Generator().manual_seed(1))
    return 2 * integrate(field, latents, grid, method).nfe


TIMED = {"fireflow": _injected_edit, "rf_inversion": _rf_inversion, "flowedit": _flowedit}


def time_edit(transformer, height: int, width: int, algorithm: str, method: str, steps: int,
              text_tokens: int = 512) -> dict:
    """Seconds and NFE of one edit by ``algorithm`` (a key of :data:`TIMED`) on random inputs.

    The grid is FLUX.1-dev's (a bare transformer has no scheduler); its length is what costs time.
    """
    prompt, img_ids, latents = _inputs(transformer, height, width, text_tokens)
    sampling = flux_schedule(steps, latents.shape[1])
    clock = Clock(latents.device)
    with clock.phase("edit"):
        nfe = TIMED[algorithm](transformer, latents, prompt, img_ids, sampling, method)
    return {"seconds": clock.seconds["edit"], "nfe": nfe}


def time_single_call(transformer, height: int, width: int, text_tokens: int = 512,
                     min_run_time: float = 1.0) -> float:
    """Median seconds of one plain transformer call (the cost of one NFE), by ``torch.utils.benchmark``.

    The Timer synchronises CUDA and repeats blocks of calls for at least ``min_run_time`` seconds;
    one untimed call first warms up kernels and allocator.
    """
    from torch.utils import benchmark

    prompt, img_ids, latents = _inputs(transformer, height, width, text_tokens)
    guidance = torch.ones(1, device=latents.device) if transformer.config.guidance_embeds else None
    inputs = dict(hidden_states=latents.to(transformer.dtype), guidance=guidance, pooled_projections=prompt.pooled,
                  timestep=torch.full((1,), 0.5, device=latents.device, dtype=transformer.dtype),
                  encoder_hidden_states=prompt.prompt_embeds, txt_ids=prompt.text_ids, img_ids=img_ids,
                  return_dict=False)
    with torch.no_grad():
        transformer(**inputs)
        timer = benchmark.Timer("transformer(**inputs)", globals={"transformer": transformer, "inputs": inputs})
        return timer.blocked_autorange(min_run_time=min_run_time).median


def run_benchmark(transformer, sizes=(512, 1024), configs=CONFIGS, repeats: int = 2, text_tokens: int = 512,
                  progress: bool = True) -> dict:
    """Time every config at every square size; report median edit seconds, NFE and speedups over Euler 28+28.

    ``fireflow_8_vs_18_calls`` is the 8-step FireFlow edit time over 18 x the single-call time
    (1.0 = no overhead beyond the network).
    """
    device = transformer.device
    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": str(transformer.dtype).replace("torch.", ""),
        "parameters": sum(p.numel() for p in transformer.parameters()),
        "text_tokens": text_tokens,
        "sizes": {},
    }
    for size in tqdm(sizes, desc="sizes", disable=not progress):
        single = time_single_call(transformer, size, size, text_tokens)
        row = {"single_call_seconds": single, "configs": {}}
        for label, algorithm, method, steps in configs:
            time_edit(transformer, size, size, algorithm, method, steps, text_tokens=text_tokens)  # warm-up
            runs = [time_edit(transformer, size, size, algorithm, method, steps, text_tokens=text_tokens)
                    for _ in range(repeats)]
            row["configs"][label] = {"algorithm": algorithm, "method": method, "steps": steps, "nfe": runs[0]["nfe"],
                                     "seconds": statistics.median(r["seconds"] for r in runs)}
        euler = row["configs"].get("euler_28")
        for entry in row["configs"].values():
            entry["speedup_vs_euler_28"] = euler["seconds"] / entry["seconds"] if euler else None
            entry["seconds_per_nfe"] = entry["seconds"] / entry["nfe"]
        if "fireflow_8" in row["configs"]:
            row["fireflow_8_vs_18_calls"] = row["configs"]["fireflow_8"]["seconds"] / (18 * single)
        results["sizes"][str(size)] = row
    return results


def format_benchmark(results: dict) -> str:
    lines = [f"{results['device']}, {results['dtype']}, {results['parameters'] / 1e6:,.1f}M-parameter transformer, "
             f"{results['text_tokens']} text tokens (transformer time only)"]
    for size, row in results["sizes"].items():
        lines.append(f"\n{size}x{size}: one transformer call {row['single_call_seconds'] * 1e3:.1f} ms")
        lines.append(f"  {'config':<16}{'NFE':>5}{'seconds':>10}{'ms/NFE':>9}{'vs euler 28+28':>16}")
        for label, entry in row["configs"].items():
            speedup = entry["speedup_vs_euler_28"]
            lines.append(f"  {label:<16}{entry['nfe']:>5}{entry['seconds']:>10.3f}{entry['seconds_per_nfe'] * 1e3:>9.1f}"
                         f"{(f'{speedup:.2f}x' if speedup else '-'):>16}")
        if "fireflow_8_vs_18_calls" in row:
            lines.append(f"  fireflow 8-step edit / (18 x one call) = {row['fireflow_8_vs_18_calls']:.2f}")
    return "\n".join(lines)
