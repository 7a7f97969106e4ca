"""Assignment D on the mini FLUX, the grader's side: fresh hidden cases, and the package's answers on them.

:mod:`fireflow_edu.grading.judge` imports this module by the name :data:`fireflow_edu.grading.exercises.MODEL_JUDGES`
gives it (grading is family-neutral and imports no family). :func:`draw` picks, per exercise, scenes from the
held-out test seeds with an edit kind, the number of solver steps and of injected steps, and sends the kernel
what the student's function needs: the source latents, the sampling grid, the prompts' embeddings, the latent
position ids and the guidance (the probe, :mod:`fireflow_edu.grading.probe`, builds v(x, t) from them, so the
kernel's velocity is the reference's), or for D.3 two images and the edit mask. :func:`verdict` computes the
package's answer here, in the grader's process (the latents the package's inversion, reconstruction and V-injection
edit decode, :func:`~fireflow_edu.grading.checks.reference_latents`; PIE-Bench's ``psnr_unedit``), and decides with
the same verdicts as the notebook's self-checks (:mod:`fireflow_edu.grading.checks`), so a student reads the same
hint in both.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import torch

from ..editing import model_adapter
from ..editing.metrics import masked_psnr
from ..flux.latents import latent_image_ids
from ..grading.checks import background_verdict, reference_latents, round_trip_verdict, v_injection_verdict
from ..grading.exercises import Exercise
from ..piebench.metrics import region_metrics
from .model import SHIPPED, load_mini_pipeline
from .scenes import EDIT_KINDS, TEST_SEEDS, make_edit

SEEDS = TEST_SEEDS[500_000:]  # apart from mini-bench's, the mini PIE-Bench's and the notebooks' scenes
STEPS = (6, 10)  # solver steps per case, drawn in this range (both ends included)
MODEL_CASES = 2  # cases per exercise that runs the model
PSNR_CASES = 4
NOISE_SIGMA = (2.0, 12.0)  # pixel noise on D.3's edited images, so their backgrounds differ from the source's

# one reference computation at a time: the grader judges several submissions at once (--jobs), and an edit's
# feature hooks sit on the one shared pipeline
_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def pipeline():
    """The shipped mini FLUX, loaded once per grading process."""
    return load_mini_pipeline()


@contextmanager
def _reference():
    """The shared pipeline, alone, on one thread: the mini's matrices (16 to 32 tokens of 128 values) gain nothing
    from a second thread, and a second one competes with the kernels being graded for the cores."""
    with _LOCK:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield pipeline()
        finally:
            torch.set_num_threads(threads)


def _scene(rng: np.random.Generator):
    return make_edit(int(SEEDS[int(rng.integers(len(SEEDS)))]), str(rng.choice(EDIT_KINDS)))


def _conditioning(adapter, prompt: str) -> dict:
    embedding = adapter.encode_prompt(prompt)
    return {"prompt_embeds": embedding.prompt_embeds.tolist(), "pooled": embedding.pooled.tolist(),
            "text_ids": embedding.text_ids.tolist()}


def _model_case(pipe, exercise: Exercise, rng: np.random.Generator, index: int) -> dict:
    adapter, scene = model_adapter(pipe), _scene(rng)
    steps = int(rng.integers(STEPS[0], STEPS[1] + 1))
    image = scene.source.render()
    latents = adapter.encode_image(image)
    case = {"seed": scene.seed, "edit_kind": scene.kind, "steps": steps, "latents": latents.tolist(),
            "timesteps": adapter.schedule(steps, latents).tolist(),
            "img_ids": latent_image_ids(pipe, *image.shape[:2]).tolist(),
            "source": _conditioning(adapter, scene.source.caption),
            "source_guidance": adapter.resolve_guidance("auto", "invert", steps)}
    if exercise.kind == "mini_v_injection":
        case.update(target=_conditioning(adapter, scene.target.caption),
                    target_guidance=adapter.resolve_guidance("auto", "edit", steps),
                    inject=1 if index == 0 else int(rng.integers(2, 4)))
    return case


def _psnr_case(rng: np.random.Generator) -> dict:
    scene = _scene(rng)
    noise = rng.normal(0, rng.uniform(*NOISE_SIGMA), (*scene.target.render().shape,))
    edited = np.clip(np.round(scene.target.render() + noise), 0, 255).astype(np.uint8)
    return {"source": scene.source.render().tolist(), "edited": edited.tolist(),
            "mask": scene.mask.astype(np.uint8).tolist()}


def draw(exercise: Exercise, rng: np.random.Generator) -> dict:
    """The inputs of ``exercise``'s probe for one submission (see the module docstring)."""
    if exercise.kind == "background_psnr":
        return {"cases": [_psnr_case(rng) for _ in range(PSNR_CASES)]}
    with _reference() as pipe:
        return {"model": str(SHIPPED / "transformer"),
                "cases": [_model_case(pipe, exercise, rng, index) for index in range(MODEL_CASES)]}


def _round_trip(pipe, case: dict, run: dict) -> str | None:
    scene = make_edit(case["seed"], case["edit_kind"])
    prompt = scene.source.caption
    reference = reference_latents(pipe, scene.source.render(), prompt, prompt, case["steps"], role="invert")
    return round_trip_verdict(run["logs"], run["noise"], run["x"], *reference, case["steps"])


def _v_injection(pipe, case: dict, run: dict) -> str | None:
    scene = make_edit(case["seed"], case["edit_kind"])
    inputs = (scene.source.render(), scene.source.caption, scene.target.caption, case["steps"], case["inject"])
    return v_injection_verdict(run["x"], list(run["calls"]), int(run["hooks_left"]),
                               reference_latents(pipe, *inputs)[1], case["steps"], case["inject"],
                               lambda name: reference_latents(pipe, *inputs, mistake=name)[1])


def _background(case: dict, score: float) -> str | None:
    source, edited = (np.array(case[name], dtype=np.uint8) for name in ("source", "edited"))
    mask = np.array(case["mask"], dtype=np.uint8)
    expected = region_metrics(source, edited, mask)["psnr_unedit"]
    alternatives = {"kept pixels only": masked_psnr(source, edited, mask),
                    "edited region": region_metrics(source, edited, 1 - mask)["psnr_unedit"],
                    "0-255 values": expected - 20 * math.log10(255)}
    return background_verdict(float(score), expected, alternatives)


def verdict(exercise: Exercise, item: dict, answer: dict) -> str | None:
    """None when the student's answers on ``item``'s cases are the package's, else why not (the first case that
    differs)."""
    if exercise.kind == "background_psnr":
        scores = answer["scores"]
        if len(scores) != len(item["cases"]):
            raise ValueError(f"{len(scores)} scores for {len(item['cases'])} cases")
        return next(filter(None, (_background(case, score) for case, score in zip(item["cases"], scores))), None)
    judge = {"mini_round_trip": _round_trip, "mini_v_injection": _v_injection}[exercise.kind]
    with _reference() as pipe:
        for case, run in zip(item["cases"], answer["runs"], strict=True):
            why = judge(pipe, case, run)
            if why is not None:
                return f"on a hidden {case['edit_kind'].replace('_', ' ')} scene with {case['steps']} steps: {why}"
    return None
