"""FireFlow's peers in the same framework: RF-Inversion, FlowEdit and mask-guided editing, on the tiny FLUX, the tiny
SD3 (random weights, offline) and the trained mini FLUX: exact identities, exact NFE, errors before any model call."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fireflow_edu.cli import main
from fireflow_edu.editing import edit, edit_inversion, invert
from fireflow_edu.editing.algorithms import run_algorithm
from fireflow_edu.editing.boundary import model_adapter
from fireflow_edu.editing.flowedit import flowedit
from fireflow_edu.editing.masks import latent_cells
from fireflow_edu.editing.rf_inversion import eta_window, rf_inversion_edit

SOURCE, TARGET = "a photo of a cat", "a photo of a dog"


@pytest.fixture(scope="module")
def image():
    return (np.random.default_rng(0).random((64, 80, 3)) * 255).astype(np.uint8)


def vae_round_trip(pipe, image) -> np.ndarray:
    """The source latents decoded: what an edit that changes nothing in latent space returns."""
    adapter = model_adapter(pipe)
    return adapter.decode(adapter.encode_image(image), *image.shape[:2])


@pytest.fixture
def no_model_calls(monkeypatch):
    """Make every transformer call fail, to prove an error came before any."""
    def patch(pipe):
        def refuse(*args, **kwargs):
            raise AssertionError("the transformer was called before the arguments were checked")
        monkeypatch.setattr(pipe.transformer, "forward", refuse)
    return patch


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_flowedit_with_the_source_prompt_returns_the_source_latents_exactly(request, image, family):
    pipe = request.getfixturevalue(family)
    guidance = 2.0 if family == "flux" else 3.5  # SD3: classifier-free guidance, both branches per call
    result = flowedit(pipe, image, SOURCE, SOURCE, steps=6, n_max=4, guidance=guidance, source_guidance=guidance,
                      progress=False)
    assert np.array_equal(np.asarray(result.image), vae_round_trip(pipe, image))
    assert (result.nfe, result.nfe_inversion, result.nfe_denoising) == (8, 0, 8)
    assert result.nfe_branches == (8 if family == "flux" else 16)


def test_flowedit_moves_the_image_where_the_prompts_differ(flux, image):
    result = flowedit(flux, image, SOURCE, TARGET, steps=6, n_max=4, progress=False)
    assert not np.array_equal(np.asarray(result.image), vae_round_trip(flux, image))
    assert result.settings["guidance"] == 5.5 and result.settings["source_guidance"] == 1.5  # the authors' FLUX ones


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_rf_inversion_without_control_is_plain_euler_inversion_and_denoising(request, image, family):
    pipe = request.getfixturevalue(family)
    source_guidance, guidance = (1.0, 2.0) if family == "flux" else (None, 2.0)
    ours = rf_inversion_edit(pipe, image, SOURCE, TARGET, steps=5, gamma=0.0, eta=0.0, guidance=guidance,
                             source_guidance=source_guidance, empty_inversion_prompt=False, progress=False)
    inversion = invert(pipe, image, SOURCE, steps=5, method="euler", guidance=source_guidance, progress=False)
    plain = edit_inversion(pipe, inversion, TARGET, guidance, progress=False)
    assert np.array_equal(np.asarray(ours.image), np.asarray(plain.image))
    assert ours.nfe == plain.nfe == 10


def test_rf_inversion_at_full_strength_follows_the_straight_lines_to_both_ends(flux, image):
    # gamma = 1: the inversion is the straight line to y_1, which Euler steps follow exactly, so it ends on y_1;
    # eta = 1 on every step: the edit is the straight line back to the source latents, so it ends on them
    result = rf_inversion_edit(flux, image, SOURCE, TARGET, steps=6, gamma=1.0, eta=1.0, start=0.0, stop=1.0,
                               seed=3, progress=False)
    assert result.settings["controlled_steps"] == 6
    assert np.abs(np.asarray(result.image, float) - vae_round_trip(flux, image)).max() <= 1
    adapter = model_adapter(flux)
    from fireflow_edu.editing.passes import Passes
    from fireflow_edu.editing.rf_inversion import ControlledVelocity
    from fireflow_edu.timing import Clock

    passes = Passes(adapter, "euler", False, Clock("cpu"))
    pixels, latents = passes.prepare(image)
    y1 = adapter.noise(64, 80, 3)
    inversion = passes.invert(pixels, latents, "", 6, 0.0, control=lambda u: ControlledVelocity(u, y1, 1.0, [1.0] * 6))
    torch.testing.assert_close(inversion.noise, y1, atol=1e-5, rtol=0)


def test_rf_inversion_defaults_are_the_community_pipelines(flux, image):
    result = rf_inversion_edit(flux, image, SOURCE, TARGET, progress=False)
    assert (result.nfe, result.nfe_inversion) == (56, 28)  # the paper's Table 4 row: 28 + 28
    settings = result.settings
    assert (settings["gamma"], settings["eta"], settings["start"], settings["stop"]) == (0.5, 1.0, 0.0, 0.25)
    assert settings["controlled_steps"] == 7 and settings["inversion_prompt"] == ""
    assert (settings["inversion_guidance"], settings["guidance"]) == (0.0, 3.5)
    assert eta_window(28, 1.0, 0.0, 0.25) == [1.0] * 7 + [0.0] * 21
    assert eta_window(10, 0.5, 0.2, 0.5) == [0.0] * 2 + [0.5] * 3 + [0.0] * 5


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_masks_all_false_give_the_source_and_all_true_the_unmasked_edit_exactly(request, image, family):
    pipe = request.getfixturevalue(family)
    shape = image.shape[:2]
    plain = edit(pipe, image, SOURCE, TARGET, steps=4, progress=False)
    everywhere = edit(pipe, image, SOURCE, TARGET, steps=4, mask=np.ones(shape, bool), progress=False)
    nowhere = edit(pipe, image, SOURCE, TARGET, steps=4, mask=np.zeros(shape, bool), progress=False)
    assert np.array_equal(np.asarray(everywhere.image), np.asarray(plain.image))
    assert np.array_equal(np.asarray(nowhere.image), vae_round_trip(pipe, image))
    assert everywhere.nfe == nowhere.nfe == plain.nfe == 10
    assert (everywhere.settings["editable_share"], nowhere.settings["editable_share"]) == (1.0, 0.0)


def test_a_mask_keeps_the_unedited_cells_on_the_inversion_trajectory_for_any_solver(flux, image):
    mask = np.zeros(image.shape[:2], bool)
    mask[:32, :48] = True  # the top-left 4 x 6 latent pixels of an 8 x 10 grid (2 x 3 of 4 x 5 tokens)
    for method in ("euler", "midpoint", "fireflow"):
        inversion = invert(flux, image, SOURCE, steps=4, method=method, progress=False)
        result = edit_inversion(flux, inversion, TARGET, mask=mask, progress=False)
        assert result.settings["editable_share"] == pytest.approx(6 / 20)
    # in latent space the kept tokens end exactly on the source latents
    from fireflow_edu.editing.masks import LatentBlend

    blend = LatentBlend.from_mask(model_adapter(flux), inversion, mask)
    editable = blend.editable.expand_as(inversion.latents)
    kept = blend(len(inversion.timesteps) - 2, 0.0, torch.zeros_like(inversion.latents))
    assert torch.equal(kept[~editable], inversion.latents[~editable]) and torch.count_nonzero(kept[editable]) == 0


def test_paste_keeps_every_pixel_outside_the_mask_and_the_edit_inside_exactly(flux, image):
    mask = np.zeros(image.shape[:2], bool)
    mask[8:40, 16:56] = True  # not on latent cell borders: paste works per pixel
    inversion = invert(flux, image, SOURCE, steps=4, progress=False)
    plain = edit_inversion(flux, inversion, TARGET, progress=False)
    blended = edit_inversion(flux, inversion, TARGET, mask=mask, progress=False)
    for mode, inside in (("paste", plain), ("blend+paste", blended)):
        pasted = edit_inversion(flux, inversion, TARGET, mask=mask, mask_mode=mode, progress=False)
        got = np.asarray(pasted.image)
        assert np.array_equal(got[~mask], np.asarray(pasted.source)[~mask])
        assert np.array_equal(got[mask], np.asarray(inside.image)[mask])
        assert pasted.settings["mask_mode"] == mode and pasted.nfe == plain.nfe
    assert not np.array_equal(np.asarray(plain.image)[~mask], np.asarray(plain.source)[~mask])  # the test can fail
    assert "mask_rule" not in edit_inversion(flux, inversion, TARGET, mask=mask, mask_mode="paste",
                                             progress=False).settings


def test_the_background_fit_brings_the_pixels_outside_the_mask_back_to_the_source(flux, image):
    from fireflow_edu.editing.masks import fit_background

    mask = np.zeros(image.shape[:2], bool)
    mask[8:40, 16:56] = True
    inversion = invert(flux, image, SOURCE, steps=4, progress=False)
    blended = edit_inversion(flux, inversion, TARGET, mask=mask, progress=False)
    fitted = edit_inversion(flux, inversion, TARGET, mask=mask, mask_mode="blend+fit", progress=False)
    source = np.asarray(fitted.source).astype(float)

    def error(result, where):
        return np.abs(np.asarray(result.image).astype(float) - source)[where].mean()

    # a random decoder reaches little of a random image: the mini test below holds the real gain
    assert error(fitted, ~mask) < 0.95 * error(blended, ~mask)
    assert fitted.nfe == blended.nfe and fitted.seconds["refine"] > 0
    assert (fitted.settings["mask_mode"], fitted.settings["mask_rule"]) == ("blend+fit", "any")
    # one step moves the latents and leaves the decoder's weights as they were, with no gradient kept
    before = [w.clone() for w in flux.vae.parameters()]
    moved = fit_background(model_adapter(flux), inversion.latents, inversion.source, mask, steps=1)
    assert not torch.equal(moved, inversion.latents) and not moved.requires_grad
    assert all(w.grad is None and torch.equal(w, b) for w, b in zip(flux.vae.parameters(), before))


def test_the_mask_rules_on_hand_made_cells():
    mask = np.zeros((16, 16), bool)
    mask[0:8, 0:1] = True        # one pixel column of cell (0, 0)
    mask[0:8, 8:12] = True       # half of cell (0, 1)
    mask[8:16, 0:8] = True       # all of cell (1, 0)
    assert latent_cells(mask, 8, "any").tolist() == [[True, True], [True, False]]
    assert latent_cells(mask, 8, "half").tolist() == [[False, True], [True, False]]
    assert latent_cells(mask, 8, "all").tolist() == [[False, False], [True, False]]


def test_the_identities_hold_on_the_trained_mini_flux(mini):
    from fireflow_edu.mini.benchmark import edit_cases

    case = edit_cases(2)[1]  # a colour change
    source, caption, target = case.source.render(), case.source.caption, case.target.caption
    same = flowedit(mini, source, caption, caption, steps=6, n_max=4, guidance=2.0, source_guidance=2.0, progress=False)
    assert np.array_equal(np.asarray(same.image), vae_round_trip(mini, source))
    uncontrolled = rf_inversion_edit(mini, source, caption, target, steps=4, gamma=0.0, eta=0.0, source_guidance=1.0,
                                     guidance=2.0, empty_inversion_prompt=False, progress=False)
    inversion = invert(mini, source, caption, steps=4, method="euler", progress=False)
    assert np.array_equal(np.asarray(uncontrolled.image), np.asarray(edit_inversion(mini, inversion, target, progress=False).image))
    nowhere = edit(mini, source, caption, target, mask=np.zeros((32, 32), bool), progress=False)
    everywhere = edit(mini, source, caption, target, mask=np.ones((32, 32), bool), progress=False)
    assert np.array_equal(np.asarray(nowhere.image), vae_round_trip(mini, source))
    assert np.array_equal(np.asarray(everywhere.image), np.asarray(edit(mini, source, caption, target, progress=False).image))


def test_mask_guided_fireflow_on_the_mini_keeps_the_background_the_unmasked_edit_loses(mini):
    from fireflow_edu.editing.metrics import masked_psnr
    from fireflow_edu.mini.benchmark import edit_cases

    kept, lost, fitted = [], [], []
    for case in edit_cases(10)[:5]:  # one case of each kind
        source = case.source.render()
        inversion = invert(mini, source, case.source.caption, inject=1, progress=False)
        plain = edit_inversion(mini, inversion, case.target.caption, progress=False)
        masked = edit_inversion(mini, inversion, case.target.caption, mask=case.mask, progress=False)
        fit = edit_inversion(mini, inversion, case.target.caption, mask=case.mask, mask_mode="blend+fit",
                             progress=False)
        lost.append(masked_psnr(source, np.asarray(plain.image), case.mask))
        kept.append(masked_psnr(source, np.asarray(masked.image), case.mask))
        fitted.append(masked_psnr(source, np.asarray(fit.image), case.mask))
    assert np.mean(kept) >= np.mean(lost) + 5
    assert np.mean(fitted) >= np.mean(kept) + 5  # the decoder's spread across the mask's border, taken back


@pytest.mark.parametrize("call,message", [
    (lambda p, i: flowedit(p, i, SOURCE, TARGET, steps=6, n_max=7), "n_max must be an integer between 1 and 6"),
    (lambda p, i: flowedit(p, i, SOURCE, TARGET, n_avg=0), "n_avg must be an integer >= 1"),
    (lambda p, i: flowedit(p, i, SOURCE, TARGET, n_max=4, n_min=4), "n_min must be an integer between 0 and 3"),
    (lambda p, i: flowedit(p, i, SOURCE, TARGET, guidance=[1.0, 2.0]), "one guidance per pass"),
    (lambda p, i: rf_inversion_edit(p, i, SOURCE, TARGET, gamma=1.5), r"gamma must be a number in \[0, 1\]"),
    (lambda p, i: rf_inversion_edit(p, i, SOURCE, TARGET, eta=-0.1), r"eta must be a number in \[0, 1\]"),
    (lambda p, i: rf_inversion_edit(p, i, SOURCE, TARGET, start=0.5, stop=0.25), "must not be after stop"),
    (lambda p, i: rf_inversion_edit(p, i, SOURCE, TARGET, steps=0), "steps must be a positive integer"),
    (lambda p, i: edit(p, i, SOURCE, TARGET, mask=np.ones((64, 64), bool)), r"the image is \[H, W\] = \[64, 80\]"),
    (lambda p, i: edit(p, i, SOURCE, TARGET, mask=np.ones((64, 80))), "mask must be a boolean"),
    (lambda p, i: edit(p, i, SOURCE, TARGET, mask=np.ones((64, 80), bool), mask_rule="most"), "mask_rule must be"),
    (lambda p, i: edit(p, i, SOURCE, TARGET, mask=np.ones((64, 80), bool), mask_mode="soft"), "mask_mode must be"),
    (lambda p, i: edit(p, i, SOURCE, TARGET, mask=np.ones((64, 80), bool), mask_mode="paste", mask_rule="all"),
     "mask_mode 'paste' does not blend"),
    (lambda p, i: run_algorithm("flowedit", p, i, SOURCE, TARGET, mask=np.ones((64, 80), bool)),
     "flowedit cannot use a mask"),
    (lambda p, i: run_algorithm("rf_inversion", p, i, SOURCE, TARGET, inject=2), "rf_inversion has no use for inject"),
    (lambda p, i: run_algorithm("sdedit", p, i, SOURCE, TARGET), "unknown algorithm 'sdedit'"),
])
def test_bad_arguments_fail_before_any_model_call(flux, image, no_model_calls, call, message):
    no_model_calls(flux)
    with pytest.raises(ValueError, match=message):
        call(flux, image)


def test_nfe_at_the_defaults_and_elsewhere(flux, sd3, image):
    assert flowedit(flux, image, SOURCE, TARGET, progress=False).nfe == 48  # 2 x n_max 24 x n_avg 1
    result = flowedit(flux, image, SOURCE, TARGET, steps=8, n_max=5, n_avg=2, n_min=2, progress=False)
    assert result.nfe == 2 * 2 * (5 - 2) + 2
    result = flowedit(sd3, image, SOURCE, TARGET, steps=6, n_max=3, progress=False)
    assert (result.nfe, result.nfe_branches) == (6, 12)  # classifier-free guidance on both sides
    assert result.settings["steps"] == 6 and result.settings["guidance"] == 13.5
    assert rf_inversion_edit(sd3, image, SOURCE, TARGET, steps=3, progress=False).nfe == 6


def test_edit_command_runs_each_algorithm_and_refuses_what_it_cannot_use(tmp_path, capsys):
    photo, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    Image.fromarray((np.random.default_rng(1).random((32, 48, 3)) * 255).astype(np.uint8)).save(photo)
    drawn = np.zeros((32, 48), np.uint8)
    drawn[:16, :16] = 255
    Image.fromarray(drawn).save(mask)
    base = ["edit", "--image", str(photo), "--source-prompt", "a cat", "--target-prompt", "a dog", "--tiny"]
    for algorithm, extra, nfe in (("rf_inversion", ["--steps", "3"], 6), ("flowedit", ["--steps", "4", "--n-max", "2"], 4),
                                  ("fireflow", ["--steps", "3", "--mask", str(mask), "--mask-rule", "all"], 8)):
        out = tmp_path / algorithm
        assert main([*base, "--algorithm", algorithm, *extra, "--out", str(out)]) == 0
        report = json.loads((out / "edited.json").read_text())
        assert report["nfe"] == nfe
    assert report["settings"]["mask_rule"] == "all" and report["settings"]["editable_share"] == pytest.approx(1 / 6)
    capsys.readouterr()
    assert main([*base, "--algorithm", "flowedit", "--mask", str(mask), "--out", str(tmp_path / "x")]) == 2
    assert "flowedit cannot use a mask" in capsys.readouterr().err
    assert main([*base, "--algorithm", "flowedit", "--inject", "2", "--out", str(tmp_path / "x")]) == 2
    assert "flowedit has no use for inject" in capsys.readouterr().err
    assert main([*base, "--steps", "3", "--mask", str(mask), "--mask-mode", "paste", "--out", str(tmp_path / "pasted")]) == 0
    pasted = np.asarray(Image.open(tmp_path / "pasted" / "edited.png"))
    assert np.array_equal(pasted[16:, :], np.asarray(Image.open(photo))[16:, :])
    assert json.loads((tmp_path / "pasted" / "edited.json").read_text())["settings"]["mask_mode"] == "paste"
    capsys.readouterr()
    for extra in (["--mask-rule", "half"], ["--mask-mode", "paste"]):
        assert main([*base, *extra, "--out", str(tmp_path / "x")]) == 2
        assert "give a mask too" in capsys.readouterr().err
    assert main([*base, "--mask", str(mask), "--mask-mode", "paste", "--mask-rule", "any", "--out", str(tmp_path / "x")]) == 2
    assert "does not blend" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
