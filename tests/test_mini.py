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
from fireflow_edu.mini.train import EVAL_SEED_OFFSET, train_mini_flux
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


def test_training_smoke_saves_a_pipeline_that_loads_and_edits(tmp_path):
    pipe = build_mini_pipeline(seed=0)
    losses = train_mini_flux(pipe, steps=3, batch_size=4, progress=False)
    assert len(losses) == 3 and all(np.isfinite(losses))
    pipe.save_pretrained(tmp_path)
    assert type(FluxPipeline.from_pretrained(tmp_path).vae).__name__ == "PixelShuffleVAE"
    loaded = load_mini_pipeline(tmp_path)
    case = make_edit(3, "change_color")
    result = edit(loaded, case.source.render(), case.source.caption, case.target.caption, progress=False)
    assert result.nfe == 18 and result.image.size == (32, 32)


def test_edit_scores_are_perfect_for_the_ground_truth():
    case = edit_cases(5)[1]
    score = score_edit(case, case.target.render())
    assert score["success"] == 1.0 and score["psnr_to_truth"] == 100.0 and score["background_psnr"] == 100.0


@pytest.fixture(scope="module")
def shipped():
    return load_mini_pipeline()


def test_shipped_model_loads_offline_both_ways(shipped):
    assert (SHIPPED / "model_index.json").exists()
    assert sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file()) < 25 * 2**20
    plain = FluxPipeline.from_pretrained(SHIPPED)
    for a, b in zip(plain.transformer.parameters(), shipped.transformer.parameters()):
        assert torch.equal(a, b)
    assert json.loads((SHIPPED / "training.json").read_text())["seconds"] < 45 * 60


def test_shipped_model_reconstructs_held_out_scenes_better_with_fireflow_at_equal_nfe(shipped):
    scenes = [random_scene(EVAL_SEED_OFFSET + 10_000 + i) for i in range(4)]
    psnr = {m: np.mean([reconstruct(shipped, s.render(), s.caption, steps=n, method=m,
                                    progress=False).metrics["psnr"] for s in scenes])
            for m, n in (("euler", 9), ("fireflow", 8))}
    print(psnr)
    assert psnr["fireflow"] > psnr["euler"] + 3 and psnr["fireflow"] > 35


def test_shipped_model_edits_held_out_cases_above_floors(shipped):
    cases = edit_cases(20)
    scores = [score_edit(case, np.asarray(edit(shipped, case.source.render(), case.source.caption,
                                               case.target.caption,
                                               progress=False).image)) for case in cases]
    success = np.mean([s["success"] for s in scores])
    background = np.mean([s["background_psnr"] for s in scores])
    print(f"success {success:.2f}, background PSNR {background:.2f}")
    assert success >= 0.2 and background >= 25


def test_shipped_model_follows_captions_for_background_and_colour(shipped):
    from fireflow_edu.flux import generate

    scenes = [random_scene(EVAL_SEED_OFFSET + i) for i in range(10)]
    checks = [check_scene(np.asarray(generate(shipped, s.caption, 32, 32, steps=10, seed=i)[0]), s)
              for i, s in enumerate(scenes)]
    assert np.mean([c["background"] for c in checks]) >= 0.9
    assert np.mean([c["colors"] for c in checks]) >= 0.5


def test_mini_commands_keep_the_shipped_model_and_existing_results(tmp_path, capsys):
    from fireflow_edu.cli import main

    before = (SHIPPED / "transformer" / "config.json").read_bytes()
    assert main(["mini-train", "--out", str(SHIPPED), "--steps", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (SHIPPED / "transformer" / "config.json").read_bytes() == before
    results = tmp_path / "mini.json"
    results.write_text("{}")
    assert main(["mini-bench", "--out", str(results)]) == 2
    assert "--overwrite" in capsys.readouterr().err and results.read_text() == "{}"
