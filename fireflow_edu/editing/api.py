"""Inversion, reconstruction and prompt editing of real images with any registered solver, on any model
family with an adapter (:mod:`fireflow_edu.editing.boundary`: FLUX, Stable Diffusion 3). Nothing here names a family.

One pipeline for all three:

1. the image is centre-cropped to a multiple of the model's patch size and VAE-encoded (posterior mode);
2. inversion integrates dx/dt = v(x, t | source prompt) along the reversed schedule of the pipeline's
   scheduler, data (t = 0) to noise (t = 1);
3. denoising integrates the schedule from that noise back to data with the target prompt
   (reconstruction: the same prompt);
4. the latents are decoded.

Editing stores attention features during inversion and injects them during the first ``inject``
denoising steps (:mod:`fireflow_edu.editing.features`); a mask keeps the unedited region on the inversion's
trajectory (:mod:`fireflow_edu.editing.masks`). The solver state stays float32 whatever the transformer's dtype.
FireFlow's velocity cache starts empty in each pass, so an 8-step FireFlow edit costs 9 + 9 = 18 transformer calls.
FireFlow's peers, RF-Inversion and FlowEdit, live beside this recipe (:mod:`~fireflow_edu.editing.rf_inversion`,
:mod:`~fireflow_edu.editing.flowedit`) and share its passes and results (:mod:`~fireflow_edu.editing.passes`).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from functools import partial

from PIL import Image

from ..solvers import get_solver, integrate
from ..timing import Clock
from .boundary import Guidance, model_adapter
from .features import AttentionFeatures, parse_strategy
from .images import to_pixels
from .masks import LatentBlend, check_mask, check_rule, cropped_mask, fit_background, paste
from .passes import EditResult, InversionResult, Passes, check_steps, edit_result

__all__ = ["EditResult", "InversionResult", "edit", "edit_inversion", "generate", "invert", "reconstruct"]


def invert(pipe, image, prompt: str, steps: int = 8, method: str = "fireflow", guidance: Guidance = "auto", *,
           inject: int = 0, strategy: str = "replace_v", blocks: Iterable[int] | None = None,
           cache_device: str | None = None, progress: bool = True) -> InversionResult:
    """Map ``image`` to noise latents by integrating the ODE from t = 0 to t = 1.

    Args:
        pipe: a FluxPipeline or StableDiffusion3Pipeline (:func:`~fireflow_edu.editing.loading.load_pipeline`,
            or a tiny one).
        image: PIL image or [H, W, 3] array; centre-cropped to a multiple of 16.
        prompt: the source prompt.
        steps: solver steps on the pipeline's (shifted) schedule.
        method: any name in :data:`fireflow_edu.solvers.SOLVERS`.
        guidance: "auto": 1.0 (faithful inversion) for a guidance-distilled FLUX, none for a model without
            a guidance embedding, and no classifier-free guidance for SD3; or a number (one per step for FLUX).
        inject: store the attention features of the ``inject`` steps nearest the noise for later edits
            (``strategy``, ``blocks`` and ``cache_device`` as in :func:`edit`); 0 stores nothing.

    Inverting once and calling :func:`edit_inversion` for each target prompt costs 9 + 9k NFE for k
    targets with 8 FireFlow steps, instead of 18k.
    """
    check_steps(steps, inject)
    get_solver(method)
    parse_strategy(strategy)
    adapter = model_adapter(pipe)
    guidance = adapter.resolve_guidance(guidance, "invert", steps)
    chosen = adapter.resolve_blocks(blocks)
    features = AttentionFeatures(strategy, inject, chosen, cache_device) if inject > 0 else None
    passes = Passes(adapter, method, progress, Clock(adapter.device))
    pixels, latents = passes.prepare(image)
    with adapter.feature_hooks(features) if features is not None else nullcontext():
        inversion = passes.invert(pixels, latents, prompt, steps, guidance, features)
    inversion.settings = {"source_prompt": prompt, "steps": steps, "inject": inject, "inversion_guidance": guidance,
                          "method": method, "strategy": strategy, "blocks": list(chosen),
                          "image_size": list(to_pixels(image).shape[:2])}
    inversion.features = features
    return inversion


def generate(pipe, prompt: str, height: int, width: int, steps: int = 8, method: str = "fireflow",
             guidance: Guidance = "auto", seed: int = 0, progress: bool = False) -> tuple[Image.Image, int]:
    """Text to image with any solver on the pipeline's schedule (seeded Gaussian noise at t = 1).

    ``guidance``: "auto" is 2.0 on a guidance-distilled FLUX, the scale FireFlow edits with (``FluxPipeline``
    generates at 3.5: pass it to match), none for a model without the embedding; Stable Diffusion 3's
    classifier-free guidance 7.0, as diffusers generates.

    Returns the image and the NFE used (FireFlow: steps + 1, the paper's Table 2 setting).
    ``height`` and ``width`` must be multiples of the model's patch size in pixels (16 for FLUX and SD3).
    """
    check_steps(steps)
    adapter = model_adapter(pipe)
    guidance = adapter.resolve_guidance(guidance, "generate", steps)
    multiple = adapter.size_multiple
    if height % multiple or width % multiple or height < multiple or width < multiple:
        raise ValueError(f"height and width must be positive multiples of {multiple}, got {height}x{width}")
    noise = adapter.noise(height, width, seed)
    sampling = adapter.schedule(steps, noise)
    velocity = adapter.velocity(adapter.encode_prompt(prompt), height, width, sampling, guidance)
    result = integrate(velocity, noise, sampling, method, progress=progress)
    return Image.fromarray(adapter.decode(result.x, height, width)), result.nfe


def reconstruct(pipe, image, prompt: str = "", steps: int = 8, method: str = "fireflow", guidance: Guidance = "auto", *,
                progress: bool = True) -> EditResult:
    """Invert and regenerate with the same prompt and no injection: the paper's reconstruction test.

    ``metrics`` holds RMSE over RGB 0-255, PSNR and SSIM against the cropped source, and
    ``latent_rmse``, the round trip's error in latent space (the solver's share alone). ``guidance``
    "auto" is 1.0 both ways for a guidance-distilled model.
    """
    check_steps(steps)
    get_solver(method)
    adapter = model_adapter(pipe)
    guidance = adapter.resolve_guidance(guidance, "invert", steps)
    passes = Passes(adapter, method, progress, Clock(adapter.device))
    inversion = passes.invert(*passes.prepare(image), prompt, steps, guidance)
    denoised, out, branches = passes.denoise(inversion, prompt, guidance)
    settings = {"prompt": prompt, "steps": steps, "method": method, "guidance": guidance}
    return edit_result(inversion, denoised, out, branches, passes.clock.seconds, settings, with_metrics=True)


def edit(pipe, image, source_prompt: str, target_prompt: str, steps: int = 8, inject: int = 1,
         guidance: Guidance = "auto", method: str = "fireflow", strategy: str = "replace_v",
         blocks: Iterable[int] | None = None, *, inversion_guidance: Guidance = "auto",
         mask=None, mask_rule: str | None = None, mask_mode: str = "blend", cache_device: str | None = None,
         progress: bool = True) -> EditResult:
    """Edit ``image`` from ``source_prompt`` to ``target_prompt`` (FireFlow's recipe by default).

    Args:
        steps: solver steps for inversion and for denoising (8 in the paper's headline setting).
        inject: denoising steps, nearest the noise, that receive the stored features (0 = none).
        guidance: guidance while denoising: a number, or for FLUX one value per interval of the grid in
            denoising order, like [1, 2, 2, ...] (the first value on the interval leaving the noise);
            "auto" is 2.0 for a guidance-distilled FLUX (the reference setting), none without the embedding,
            and classifier-free guidance 2.0 for SD3.
        method: solver name; ``strategy``: "replace_v", "add_q", "add_k", "add_v" or a "+" combination.
        blocks: attention blocks taking part (default all): FLUX's single-stream blocks, SD3's joint blocks.
        inversion_guidance: guidance while inverting the source ("auto": 1.0, as the reference code); a list
            is in the same denoising order, so its value on each interval meets the edit's on the same one.
        mask: a boolean [H, W] array at the image's resolution, True where the edit may change the image; it is
            cropped exactly as the image is, and outside it the latents follow the inversion's trajectory back
            to the source (blended latent editing, :mod:`~fireflow_edu.editing.masks`, which states the rule
            ``mask_rule`` that maps pixels to latent cells; default "any"). All False gives the source latents
            back exactly, all True the unmasked edit exactly. Costs no NFE.
        mask_mode: "blend" (the above), "paste" (the unmasked edit, then the source's pixels outside the mask),
            "blend+paste", or "blend+fit" (the blend, then its latents fitted so the decoded image comes back
            to the source's pixels outside the mask: no NFE, a few dozen decoder passes with gradients); see
            :mod:`~fireflow_edu.editing.masks`.
        cache_device: keep stored features there (e.g. "cpu") instead of beside the activations.

    Returns an :class:`EditResult`; ``nfe`` is 18 for the default 8-step FireFlow edit. The same as
    :func:`invert` with ``inject`` followed by :func:`edit_inversion`, which is cheaper for several targets.
    """
    check_steps(steps, inject)
    model_adapter(pipe).resolve_guidance(guidance, "edit", steps)  # before the inversion: bad arguments fail now
    if mask is not None:
        check_mask(mask, to_pixels(image).shape[:2])
        check_rule(mask_rule, mask_mode)
    inversion = invert(pipe, image, source_prompt, steps, method, inversion_guidance, inject=inject,
                       strategy=strategy, blocks=blocks, cache_device=cache_device, progress=progress)
    return edit_inversion(pipe, inversion, target_prompt, guidance, mask=mask, mask_rule=mask_rule,
                          mask_mode=mask_mode, progress=progress)


def edit_inversion(pipe, inversion: InversionResult, target_prompt: str, guidance: Guidance = "auto", *,
                   mask=None, mask_rule: str | None = None, mask_mode: str = "blend",
                   progress: bool = True) -> EditResult:
    """Denoise an :func:`invert` result towards ``target_prompt``, injecting the features it stored.

    Same solver and steps as the inversion; ``guidance``, ``mask``, ``mask_rule`` and ``mask_mode`` as in
    :func:`edit` (the mask at the size of the image that was inverted). The result's ``nfe`` counts the shared
    inversion once per edit, as a fresh :func:`edit` would; ``nfe_denoising`` is this edit's own cost.
    """
    steps = len(inversion.timesteps) - 1
    adapter = model_adapter(pipe)
    guidance = adapter.resolve_guidance(guidance, "edit", steps)
    blend = cropped = refine = None
    if mask is not None:
        mask_rule = check_rule(mask_rule, mask_mode)
        cropped = cropped_mask(adapter, inversion, mask)
        if "blend" in mask_mode:
            blend = LatentBlend.from_mask(adapter, inversion, cropped, mask_rule)
        if "fit" in mask_mode:
            refine = partial(fit_background, adapter, source=inversion.source, cropped=cropped, progress=progress)
    features = inversion.features
    passes = Passes(adapter, inversion.settings["method"], progress, Clock(adapter.device))
    with adapter.feature_hooks(features) if features is not None else nullcontext():
        if features is not None:
            features.clear_injections()
        denoised, out, branches = passes.denoise(inversion, target_prompt, guidance, features, project=blend,
                                                 refine=refine)
    if cropped is not None and "paste" in mask_mode:  # in pixels, after decoding: the edit never saw the mask
        out = paste(inversion.source, out, cropped)
    seconds = {phase: inversion.seconds.get(phase, 0.0) + passes.clock.seconds.get(phase, 0.0)
               for phase in {**inversion.seconds, **passes.clock.seconds}}
    settings = {**inversion.settings, "target_prompt": target_prompt, "guidance": guidance}
    if mask is not None:
        settings["mask_mode"] = mask_mode
    if blend is not None:
        settings.update(mask_rule=mask_rule, editable_share=blend.editable_share)
    return edit_result(inversion, denoised, out, branches, seconds, settings, features)
