"""Stable Diffusion 3 through the model boundary, on the tiny random-weight SD3 pipeline (offline): our Euler pass
is diffusers' SD3 sampler, the schedule is the pipeline's, and invert / reconstruct / edit run with real
classifier-free guidance counted both ways."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from fireflow_edu.editing.boundary import model_adapter
from fireflow_edu.cli import main
from fireflow_edu.editing import edit, edit_inversion, invert, reconstruct
from fireflow_edu.solvers import integrate

SOURCE, TARGET = "a photo of a cat", "a photo of a dog"


@pytest.fixture(scope="module")
def pipe(sd3):
    return sd3


@pytest.fixture(scope="module")
def image():
    return (np.random.default_rng(0).random((64, 80, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("guidance", [None, 3.0])
def test_our_euler_pass_is_diffusers_sd3_sampler(pipe, guidance):
    adapter = model_adapter(pipe)
    noise = adapter.noise(64, 64, seed=0)
    grid = adapter.schedule(4, noise)
    pipe.scheduler.set_timesteps(4)
    assert torch.equal(grid, pipe.scheduler.sigmas.float()) and grid[0] == 1 and grid[-1] == 0
    velocity = adapter.velocity(adapter.encode_prompt(SOURCE), 64, 64, grid, guidance)
    ours = integrate(velocity, noise, grid, "euler").x
    theirs = pipe(SOURCE, num_inference_steps=4, guidance_scale=guidance or 1.0, height=64, width=64,
                  latents=noise.clone(), output_type="latent", max_sequence_length=32).images
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_bf16_euler_pass_calls_the_transformer_as_diffusers_sd3_sampler_does():
    """In bfloat16 the transformer gets the same float32 timesteps from us as from diffusers' SD3 pipeline
    (1000 t in bf16 would round, 964.29 to 964) and the pass ends where diffusers' does, up to the bf16
    rounding of the state that diffusers keeps in bf16 and we in float32."""
    from fireflow_edu.sd3 import tiny_sd3_pipeline

    bf16 = tiny_sd3_pipeline().to(dtype=torch.bfloat16)
    seen = []
    hook = bf16.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["timestep"].clone()), with_kwargs=True)
    adapter = model_adapter(bf16)
    noise = adapter.noise(64, 64, seed=0)
    grid = adapter.schedule(7, noise)
    assert (grid[:-1] * 1000).to(torch.bfloat16).float().ne(grid[:-1] * 1000).any()  # bf16 would round these
    velocity = adapter.velocity(adapter.encode_prompt(SOURCE), 64, 64, grid, None)
    ours = integrate(velocity, noise, grid, "euler").x
    ours_timesteps, seen[:] = list(seen), []
    theirs = bf16(SOURCE, num_inference_steps=7, guidance_scale=1.0, height=64, width=64,
                  latents=noise.clone(), output_type="latent", max_sequence_length=32).images
    hook.remove()
    assert len(ours_timesteps) == len(seen) == 7
    for mine, reference in zip(ours_timesteps, seen):
        assert mine.dtype == reference.dtype == torch.float32 and torch.allclose(mine, reference, rtol=1e-6)
    assert torch.allclose(ours, theirs.float(), atol=0.05)


def test_guidance_resolution_and_errors(pipe):
    adapter = model_adapter(pipe)
    assert [adapter.resolve_guidance("auto", role, 8) for role in ("invert", "edit", "generate")] == [None, 2.0, 7.0]
    assert adapter.branches(None) == adapter.branches(1.0) == 1 and adapter.branches(2.0) == 2
    with pytest.raises(ValueError, match="not one per step"):
        adapter.resolve_guidance([1.0, 2.0], "edit", 2)


def test_reconstruction_fireflow_beats_euler_at_equal_nfe(pipe, image):
    runs = {m: reconstruct(pipe, image, SOURCE, steps=n, method=m, progress=False) for m, n in (("fireflow", 8),
                                                                                                  ("euler", 9))}
    assert runs["fireflow"].nfe == runs["euler"].nfe == 18 and runs["fireflow"].nfe_branches == 18  # no CFG
    assert runs["fireflow"].metrics["latent_rmse"] < runs["euler"].metrics["latent_rmse"] / 3


def test_edit_injects_image_v_in_joint_blocks_and_counts_both_cfg_branches(pipe, image):
    before = dict(pipe.transformer.attn_processors)
    result = edit(pipe, image, SOURCE, TARGET, steps=8, inject=2, blocks=[1], progress=False)
    # 9 inversion calls without guidance, 9 denoising calls each batching the two CFG branches
    assert (result.nfe, result.nfe_branches) == (18, 9 + 2 * 9)
    assert result.settings["guidance"] == 2.0 and result.settings["inversion_guidance"] is None
    assert result.injections == 2  # FireFlow calls with a stored twin in the first two steps, one block
    assert {k: type(v) for k, v in pipe.transformer.attn_processors.items()} == {k: type(v) for k, v in before.items()}
    plain = edit(pipe, image, SOURCE, TARGET, steps=8, inject=0, progress=False)
    assert not np.array_equal(np.asarray(plain.image), np.asarray(result.image))  # injection changes the result


def test_invert_once_edit_many_on_sd3(pipe, image, tmp_path):
    from fireflow_edu.editing.api import InversionResult

    inversion = invert(pipe, image, SOURCE, steps=4, inject=1, progress=False)
    inversion.save(tmp_path / "inversion.pt")
    reloaded = InversionResult.load(tmp_path / "inversion.pt")
    edits = [edit_inversion(pipe, reloaded, target, progress=False) for target in (TARGET, "a photo of a bird")]
    # 5 inversion calls without guidance; each edit 5 calls batching both CFG branches
    assert [e.nfe_branches for e in edits] == [5 + 10, 5 + 10] and all(e.injections == 2 for e in edits)
    assert not np.array_equal(np.asarray(edits[0].image), np.asarray(edits[1].image))
    in_memory = edit_inversion(pipe, inversion, TARGET, progress=False)
    assert np.array_equal(np.asarray(in_memory.image), np.asarray(edits[0].image))


def test_timestep_distilled_flux_warns_before_inverting(image):
    from diffusers import FlowMatchEulerDiscreteScheduler

    from fireflow_edu.mini.model import build_mini_pipeline
    from fireflow_edu.mini.scenes import random_scene

    mini = build_mini_pipeline()  # a mini FLUX teacher: no guidance embedding, like schnell
    scene = random_scene(3).render()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # but a plain flow on FLUX.1-dev's shifted schedule: no warning
        invert(mini, scene, "a scene", steps=2, progress=False)
    mini.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)  # schnell's
    with pytest.warns(UserWarning, match="timestep-distilled like FLUX.1-schnell"):
        invert(mini, scene, "a scene", steps=2, progress=False)


def test_cli_edit_runs_the_tiny_sd3_offline(tmp_path, capsys):
    from PIL import Image

    Image.fromarray((np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    assert main(["edit", "--tiny-sd3", "--image", str(tmp_path / "in.png"), "--source-prompt", SOURCE,
                 "--target-prompt", TARGET, "--steps", "4", "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "edited.json").read_text())
    assert report["nfe"] == 10 and report["nfe_branches"] == 15 and report["model"].startswith("tiny SD3")
    assert "random-weight" in capsys.readouterr().err
    assert main(["bench", "--tiny-sd3"]) == 2


def test_idle_hooks_on_the_joint_blocks_leave_diffusers_output_unchanged(pipe):
    from fireflow_edu.editing.features import AttentionFeatures

    adapter = model_adapter(pipe)
    noise, conditioning = adapter.noise(32, 48, seed=2), adapter.encode_prompt(SOURCE)
    grid = adapter.schedule(2, noise)
    plain = adapter.velocity(conditioning, 32, 48, grid, 3.0)(noise, float(grid[1]))
    with adapter.feature_hooks(AttentionFeatures("replace_v+add_q+add_k", 1, adapter.resolve_blocks(None))):
        hooked = adapter.velocity(conditioning, 32, 48, grid, 3.0)(noise, float(grid[1]))
    assert torch.equal(plain, hooked) and plain.abs().max() > 0.1
