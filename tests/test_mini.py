"""The mini FLUX: renderer, ground-truth edits, detector, training smoke test, the shipped model."""

import json

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline

from fireflow_edu.flux import edit, reconstruct
from fireflow_edu.mini.benchmark import edit_cases, score_edit
from fireflow_edu.mini.detect import check_scene, detect
from fireflow_edu.mini.model import SHIPPED, build_mini_pipeline, load_mini_pipeline
from fireflow_edu.mini.scenes import EDIT_KINDS, Scene, Shape, make_edit, random_scene
from fireflow_edu.flux.images import latent_image_ids
from fireflow_edu.mini.train import (CHECKPOINT, EVAL_SEED_OFFSET, TrainConfig, call, cfg_velocity, encode, scene_batch,
                                     student_from, train_mini_flux)
from fireflow_edu.mini.vae import PixelShuffleVAE


def test_scenes_are_deterministic_and_captioned_by_the_grammar():
    a, b = random_scene(7), random_scene(7)
    assert a == b and np.array_equal(a.render(), b.render())
    assert random_scene(8) != a
    scene = Scene("gray", (Shape("star", "orange", 10, 10, 6), Shape("circle", "red", 22, 22, 5)))
    assert scene.caption == "an orange star and a red circle on a gray background"
    image = scene.render()
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert tuple(image[10, 10]) == (245, 140, 30) and tuple(image[0, 0]) == (128, 128, 128)


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_ground_truth_edits_change_only_inside_the_mask(kind):
    for seed in range(20):
        case = make_edit(seed, kind)
        assert case == make_edit(seed, kind)
        source, target = case.source.render(), case.target.render()
        assert case.mask.any() and not np.array_equal(source, target)
        assert np.array_equal(source[~case.mask], target[~case.mask])
        assert case.source.caption != case.target.caption
        assert len(case.target.objects) - len(case.source.objects) == {"add_object": 1, "remove_object": -1}.get(kind, 0)
        if kind == "change_background":
            assert case.source.objects == case.target.objects


def test_unknown_edit_kind():
    with pytest.raises(ValueError, match="change_color"):
        make_edit(0, "recolour")


def test_detector_reads_every_render_correctly():
    for seed in range(EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + 200):
        scene = random_scene(seed)
        assert check_scene(scene.render(), scene)["all"], (scene.caption, detect(scene.render()))
    blank = np.full((32, 32, 3), 245, np.uint8)
    assert detect(blank).objects == [] and detect(blank).background == "white"


def test_pixel_shuffle_vae_is_lossless_and_reloads(tmp_path):
    vae = PixelShuffleVAE(factor=2)
    x = torch.rand(2, 3, 32, 32)
    latent = vae.encode(x).latent_dist.mode()
    assert latent.shape == (2, 12, 16, 16)
    assert torch.equal(vae.decode(latent, return_dict=False)[0], x)
    vae.save_pretrained(tmp_path)
    assert PixelShuffleVAE.from_pretrained(tmp_path).config.block_out_channels == [3, 3]


SMOKE = dict(teacher_steps=4, distill_steps=2, batch_size=4, warmup=2, eval_every=2, eval_captions=4,
             checkpoint_every=2)


def test_training_smoke_saves_a_guidance_distilled_pipeline_that_loads_and_edits_with_defaults(tmp_path):
    pipe, record = train_mini_flux(build_mini_pipeline(seed=0), TrainConfig(**SMOKE), progress=False)
    assert pipe.transformer.config.guidance_embeds and not pipe.transformer.training
    assert [row["step"] for row in record["teacher"]["curve"]] == [2, 4]
    assert [row["step"] for row in record["distill"]["curve"]] == [2]
    assert set(record["teacher"]["curve"][0]) >= {"minutes", "background", "count", "colors", "shapes", "all"}
    pipe.save_pretrained(tmp_path)
    assert type(FluxPipeline.from_pretrained(tmp_path).vae).__name__ == "PixelShuffleVAE"
    loaded = load_mini_pipeline(tmp_path)
    case = make_edit(3, "change_color")
    result = edit(loaded, case.source.render(), case.source.caption, case.target.caption, progress=False)
    assert result.nfe == 18 and result.image.size == (32, 32)


def test_training_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):
    straight, _ = train_mini_flux(build_mini_pipeline(seed=0), TrainConfig(**SMOKE), tmp_path / "a", progress=False)

    def interrupt(phase, row):
        if phase == "teacher" and row["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_mini_flux(build_mini_pipeline(seed=0), TrainConfig(**SMOKE), tmp_path / "b", progress=False,
                        on_eval=interrupt)
    assert torch.load(tmp_path / "b" / CHECKPOINT, weights_only=False)["teacher"]["step"] == 2
    resumed, _ = train_mini_flux(build_mini_pipeline(seed=0), TrainConfig(**SMOKE), tmp_path / "b", progress=False)
    for a, b in zip(straight.transformer.parameters(), resumed.transformer.parameters()):
        assert torch.equal(a, b)


def test_adaln_zero_starts_every_block_as_the_identity():
    pipe = build_mini_pipeline(seed=0)
    x, captions = scene_batch(pipe, [1, 2])
    v = call(pipe.transformer, x, torch.tensor([0.3, 0.7]), encode(pipe, captions), latent_image_ids(pipe, 32, 32))
    assert torch.count_nonzero(v) == 0


def test_student_starts_as_the_teacher_and_guidance_mixes_the_two_branches():
    pipe = build_mini_pipeline(seed=0)
    for p in pipe.transformer.parameters():  # leave adaLN-Zero so the outputs are not all zero
        p.data.normal_(0, 0.05)
    teacher = pipe.transformer
    student = student_from(teacher)
    x, captions = scene_batch(pipe, [1, 2])
    t, ids = torch.tensor([0.3, 0.7]), latent_image_ids(pipe, 32, 32)
    cond, uncond = encode(pipe, captions), encode(pipe, ["", ""])
    with torch.no_grad():
        v_cond, v_uncond = call(teacher, x, t, cond, ids), call(teacher, x, t, uncond, ids)
        for g in (1.0, 3.0):
            assert torch.allclose(call(student, x, t, cond, ids, torch.full((2,), g)), v_cond, atol=1e-6)
        assert torch.allclose(cfg_velocity(teacher, x, t, cond, uncond, ids, 1.0), v_cond, atol=1e-6)
        assert torch.allclose(cfg_velocity(teacher, x, t, cond, uncond, ids, 0.0), v_uncond, atol=1e-6)
        mixed = cfg_velocity(teacher, x, t, cond, uncond, ids, torch.tensor([2.0, 3.0]))
        assert torch.allclose(mixed[1], v_uncond[1] + 3 * (v_cond[1] - v_uncond[1]), atol=1e-5)


@pytest.mark.parametrize("bad, match", [({"teacher_steps": 0}, "teacher_steps"), ({"caption_dropout": 1.0}, "dropout"),
                                        ({"guidance_range": (2.0, 1.0)}, "guidance_range")])
def test_train_config_rejects_bad_settings(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_edit_scores_are_perfect_for_the_ground_truth():
    case = edit_cases(5)[1]
    score = score_edit(case, case.target.render())
    assert score["success"] == 1.0 and score["psnr_to_truth"] == 100.0 and score["background_psnr"] == 100.0


@pytest.fixture(scope="module")
def shipped():
    return load_mini_pipeline()


def test_shipped_model_is_a_guidance_distilled_flux_that_loads_offline_both_ways(shipped):
    assert (SHIPPED / "model_index.json").exists()
    assert sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file()) < 25 * 2**20
    plain = FluxPipeline.from_pretrained(SHIPPED)
    for a, b in zip(plain.transformer.parameters(), shipped.transformer.parameters()):
        assert torch.equal(a, b)
    assert shipped.transformer.config.guidance_embeds
    record = json.loads((SHIPPED / "training.json").read_text())
    assert record["teacher"]["minutes"] + record["distill"]["minutes"] <= 120


def test_shipped_model_reconstructs_held_out_scenes_better_with_fireflow_at_equal_nfe(shipped):
    scenes = [random_scene(EVAL_SEED_OFFSET + 10_000 + i) for i in range(4)]
    psnr = {m: np.mean([reconstruct(shipped, s.render(), s.caption, steps=n, method=m, progress=False).metrics["psnr"]
                        for s in scenes])
            for m, n in (("euler", 9), ("fireflow", 8))}
    print(psnr)
    assert psnr["fireflow"] > psnr["euler"] + 6 and psnr["fireflow"] > 35


def test_shipped_model_edits_held_out_cases_with_the_default_recipe(shipped):
    cases = edit_cases(20)
    scores = [score_edit(case, np.asarray(edit(shipped, case.source.render(), case.source.caption,
                                               case.target.caption, progress=False).image)) for case in cases]
    success = np.mean([s["success"] for s in scores])
    background = np.mean([s["background_psnr"] for s in scores])
    print(f"success {success:.2f}, background PSNR {background:.2f}")
    assert success >= SUCCESS_FLOOR and background >= 30


def test_shipped_model_draws_what_the_caption_says(shipped):
    from fireflow_edu.flux import generate

    scenes = [random_scene(EVAL_SEED_OFFSET + i) for i in range(20)]
    checks = [check_scene(np.asarray(generate(shipped, s.caption, 32, 32, steps=10, seed=i)[0]), s)
              for i, s in enumerate(scenes)]
    print({key: np.mean([c[key] for c in checks]) for key in checks[0]})
    assert np.mean([c["count"] for c in checks]) >= 0.9
    assert np.mean([c["all"] for c in checks]) >= ALL_FLOOR


def test_mini_commands_keep_the_shipped_model_and_existing_results(tmp_path, capsys):
    from fireflow_edu.cli import main

    before = (SHIPPED / "transformer" / "config.json").read_bytes()
    assert main(["mini-train", "--out", str(SHIPPED), "--teacher-steps", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (SHIPPED / "transformer" / "config.json").read_bytes() == before
    results = tmp_path / "mini.json"
    results.write_text("{}")
    assert main(["mini-bench", "--out", str(results)]) == 2
    assert "--overwrite" in capsys.readouterr().err and results.read_text() == "{}"
