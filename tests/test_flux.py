"""FLUX code on the tiny random-weight pipeline: offline, CPU, float32."""

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline
from diffusers.configuration_utils import FrozenDict
from diffusers.models.transformers.transformer_flux import FluxAttnProcessor

from fireflow_edu.analysis import fit_slope
from fireflow_edu.editing import api as editing
from fireflow_edu.editing import edit, invert, load_pipeline, reconstruct
from fireflow_edu.editing.features import AttentionFeatures, inject
from fireflow_edu.editing.images import crop_to_multiple, to_pixels
from fireflow_edu.editing.metrics import lpips_distance, masked_psnr, psnr, rmse_255, ssim
from fireflow_edu.flux import tiny_pipeline
from fireflow_edu.flux.latents import latent_image_ids
from fireflow_edu.flux.velocity import FluxVelocity, encode_prompt
from fireflow_edu.schedules import flux_schedule
from fireflow_edu.solvers import solve

SOURCE, TARGET = "a photo of a cat on a wall", "a photo of a dog on a wall"


@pytest.fixture(scope="module")
def pipe(flux):
    return flux


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:70, 0:90]
    base = np.stack([x * 2.5, y * 3.0, (x + y) * 1.5], -1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)  # 70x90: cropped to 64x80


def test_tiny_pipeline_round_trips_through_save_and_from_pretrained(tmp_path):
    pipe = tiny_pipeline(seed=0, path=tmp_path / "tiny")
    again = FluxPipeline.from_pretrained(tmp_path / "tiny")
    assert pipe.transformer.config.guidance_embeds
    for a, b in zip(pipe.transformer.parameters(), again.transformer.parameters()):
        assert torch.equal(a, b)
    images = again("a red cat", height=32, width=32, num_inference_steps=2, guidance_scale=2.0, output_type="np").images
    assert images.shape == (1, 32, 32, 3)


def test_velocity_adapter_matches_diffusers_euler_sampling(pipe):
    # Same schedule, timestep and guidance conventions as FluxPipeline: our Euler pass equals its sampler.
    height = width = 64
    tokens = (height // 16) * (width // 16)
    noise = torch.randn(1, tokens, pipe.transformer.config.in_channels, generator=torch.Generator().manual_seed(3))
    ours_grid = flux_schedule(6, tokens, pipe.scheduler.config)
    velocity = FluxVelocity(pipe.transformer, encode_prompt(pipe, SOURCE), latent_image_ids(pipe, height, width),
                            ours_grid, guidance=3.5)
    ours = solve(velocity, noise, ours_grid, "euler")
    theirs = pipe(SOURCE, height=height, width=width, num_inference_steps=6, guidance_scale=3.5,
                  latents=noise, output_type="latent", max_sequence_length=32).images
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_crop_rule_and_image_validation():
    pixels = np.zeros((70, 90, 3), np.uint8)
    assert crop_to_multiple(pixels, 16).shape == (64, 80, 3)
    assert to_pixels(np.ones((4, 4, 3), np.float32)).max() == 255
    with pytest.raises(ValueError, match="at least 16x16"):
        crop_to_multiple(np.zeros((15, 40, 3), np.uint8), 16)
    with pytest.raises(ValueError, match="empty"):
        to_pixels(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        to_pixels(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_pixels(np.full((8, 8, 3), 2.0))


def test_exact_nfe_per_edit(pipe, image):
    assert edit(pipe, image, SOURCE, TARGET, steps=8, progress=False).nfe == 18
    result = edit(pipe, image, SOURCE, TARGET, steps=4, method="rf_solver", progress=False)
    assert (result.nfe_inversion, result.nfe_denoising, result.nfe) == (8, 8, 16)
    assert reconstruct(pipe, image, SOURCE, steps=5, method="euler", progress=False).nfe == 10
    assert invert(pipe, image, SOURCE, steps=8, progress=False).nfe == 9


def test_round_trip_error_falls_at_second_order_for_fireflow(pipe, image):
    steps = (4, 8, 16, 32)
    errors = {m: [reconstruct(pipe, image, SOURCE, steps=n, method=m, progress=False).metrics["latent_rmse"]
                  for n in steps] for m in ("euler", "fireflow")}
    print(errors)
    assert all(a > b for a, b in zip(errors["fireflow"], errors["fireflow"][1:]))
    assert -fit_slope(steps, errors["fireflow"]) >= 1.8
    assert -fit_slope(steps, errors["euler"]) == pytest.approx(1.0, abs=0.2)
    assert errors["fireflow"][1] < errors["euler"][1] / 10


def test_reconstruction_metrics_are_reported(pipe, image):
    result = reconstruct(pipe, image, SOURCE, steps=4, progress=False)
    assert result.image.size == (80, 64) and result.source.size == (80, 64)
    assert set(result.metrics) == {"rmse_255", "psnr", "ssim", "latent_rmse"}
    assert result.metrics["psnr"] == pytest.approx(psnr(np.asarray(result.source), np.asarray(result.image)))


def test_injection_changes_output_only_when_enabled(pipe, image):
    plain = edit(pipe, image, SOURCE, TARGET, steps=4, inject=0, progress=False)
    # inject=0 is exactly "invert with the source prompt, denoise with the target prompt"
    inverted = invert(pipe, image, SOURCE, steps=4, progress=False)
    embedding = encode_prompt(pipe, TARGET)
    velocity = FluxVelocity(pipe.transformer, embedding, latent_image_ids(pipe, 64, 80), inverted.timesteps, 2.0)
    manual = solve(velocity, inverted.noise, inverted.timesteps, "fireflow")
    from fireflow_edu.flux.latents import decode_latents
    assert np.array_equal(np.asarray(plain.image), decode_latents(pipe, manual, 64, 80))
    injected = edit(pipe, image, SOURCE, TARGET, steps=4, inject=1, progress=False)
    assert plain.injections == 0 and plain.cache_bytes == 0
    assert injected.injections > 0 and injected.cache_bytes > 0
    assert rmse_255(plain.image, injected.image) > 0


@pytest.mark.parametrize("method,expected", [("fireflow", {(0, "mid"), (1, "mid")}),
                                             ("euler", {(0, "start"), (1, "start")})])
def test_features_live_only_on_the_chosen_blocks_and_intervals(pipe, image, method, expected):
    inverted = invert(pipe, image, SOURCE, steps=5, method=method, inject=2, blocks=[1], progress=False)
    features = inverted.features
    assert {(interval, stage) for interval, stage, _ in features.stored} == expected
    assert {block for *_, block in features.stored} == {1}
    assert all(set(f) == {"v"} for f in features.stored.values())
    assert inverted.nfe == (6 if method == "fireflow" else 5)


def test_invert_once_edit_many_equals_fresh_edits_at_9_plus_9k_nfe(pipe, image, monkeypatch, tmp_path):
    calls = []
    forward = pipe.transformer.forward
    monkeypatch.setattr(pipe.transformer, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    kept = invert(pipe, image, SOURCE, steps=8, inject=1, cache_device="cpu", progress=False)
    kept.save(tmp_path / "inversion.pt")
    inversion = editing.InversionResult.load(tmp_path / "inversion.pt")
    assert len(calls) == 9 and inversion.settings == kept.settings and inversion.nbytes == kept.nbytes
    # the latents, the pixels and, per block, the V of the one call FireFlow makes in the interval nearest
    # the noise (its midpoint; the start velocity there is the reused one)
    v = [t for feats in kept.features.stored.values() for t in feats.values()]
    assert len(v) == pipe.transformer.config.num_single_layers
    assert kept.features.nbytes == sum(t.numel() * 4 for t in v) and kept.nbytes > kept.features.nbytes
    stored = {key: {n: t.clone() for n, t in feats.items()} for key, feats in inversion.features.stored.items()}
    targets = [TARGET, "a painting of a cat on a wall"]
    edits = [editing.edit_inversion(pipe, inversion, target, progress=False) for target in targets]
    assert len(calls) == 9 + 9 * len(targets)  # one inversion serves every target
    # each edit read the stored features (once per block) and none wrote them again
    assert all(e.nfe_denoising == 9 and e.nfe == 18 and e.injections == 3 for e in edits)
    assert all(torch.equal(inversion.features.stored[key][n], t) for key, feats in stored.items() for n, t in feats.items())
    assert not np.array_equal(np.asarray(edits[0].image), np.asarray(edits[1].image))  # each target its own image
    in_memory = editing.edit_inversion(pipe, kept, targets[0], progress=False)  # the saved file lost nothing
    assert np.array_equal(np.asarray(in_memory.image), np.asarray(edits[0].image))
    assert in_memory.settings == edits[0].settings


def test_injection_count_and_block_choice(pipe, image):
    # fireflow, 4 steps, inject 2: denoising steps 0 and 1 each make one "mid" call with a stored twin
    result = edit(pipe, image, SOURCE, TARGET, steps=4, inject=2, blocks=[0, 2], progress=False)
    assert result.injections == 2 * 2
    assert result.settings["blocks"] == [0, 2]
    other = edit(pipe, image, SOURCE, TARGET, steps=4, inject=2, blocks=[1], progress=False)
    assert rmse_255(result.image, other.image) > 0


def test_add_strategies_and_per_step_guidance(pipe, image):
    base = edit(pipe, image, SOURCE, TARGET, steps=4, progress=False)
    for strategy in ("add_q", "add_k", "replace_v+add_k", "add_q+add_k+add_v"):
        result = edit(pipe, image, SOURCE, TARGET, steps=4, strategy=strategy, progress=False)
        assert result.nfe == 10 and rmse_255(result.image, base.image) > 0
    listed = edit(pipe, image, SOURCE, TARGET, steps=4, guidance=[1, 2, 2, 2], progress=False)
    assert listed.settings["guidance"] == [1, 2, 2, 2]
    with pytest.raises(ValueError, match="3 values for a pass of 4 steps"):
        edit(pipe, image, SOURCE, TARGET, steps=4, guidance=[1, 2, 2], progress=False)


def test_a_guidance_list_is_indexed_by_interval_in_both_passes(pipe, image):
    """reconstruct takes one list for both passes: inversion reads it from the data end, so both passes apply
    the same guidance over each interval and the round trip is as close as with one constant guidance."""
    constant = reconstruct(pipe, image, SOURCE, steps=8, guidance=1.0, progress=False).metrics["latent_rmse"]
    listed = reconstruct(pipe, image, SOURCE, steps=8, guidance=[4, 4, 3, 3, 2, 2, 1, 1], progress=False)
    assert listed.metrics["latent_rmse"] < 2 * constant
    # the values reach the transformer interval by interval: the denoising pass's first call is at the noise end
    seen = []
    hook = pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((float(kwargs["timestep"][0]), float(kwargs["guidance"][0]))),
        with_kwargs=True)
    try:
        reconstruct(pipe, image, SOURCE, steps=2, method="euler", guidance=[3, 1], progress=False)
    finally:
        hook.remove()
    inverting, denoising = seen[:2], seen[2:]
    assert inverting[0][0] == 0.0 and denoising[0][0] == 1.0  # Euler evaluates at each step's start
    assert [g for _, g in inverting] == [1.0, 3.0] and [g for _, g in denoising] == [3.0, 1.0]


def test_auto_guidance_follows_the_guidance_embedding(pipe, image, monkeypatch):
    result = edit(pipe, image, SOURCE, TARGET, steps=2, progress=False)
    assert (result.settings["guidance"], result.settings["inversion_guidance"]) == (2.0, 1.0)
    assert reconstruct(pipe, image, SOURCE, steps=2, progress=False).settings["guidance"] == 1.0
    explicit = edit(pipe, image, SOURCE, TARGET, steps=2, guidance=2.0, inversion_guidance=1.0, progress=False)
    assert np.array_equal(np.asarray(explicit.image), np.asarray(result.image))
    with pytest.raises(ValueError, match="'auto', a number"):
        edit(pipe, image, SOURCE, TARGET, steps=2, guidance="strong", progress=False)
    # FLUX.1-schnell-like: no guidance embedding, so "auto" means none and a number is an error
    monkeypatch.setattr(pipe.transformer, "_internal_dict",
                        FrozenDict({**pipe.transformer.config, "guidance_embeds": False}))
    monkeypatch.setattr(pipe.transformer, "forward", _without_guidance(pipe.transformer.forward))
    assert edit(pipe, image, SOURCE, TARGET, steps=2, progress=False).settings["guidance"] is None
    with pytest.raises(ValueError, match="no guidance embedding"):
        edit(pipe, image, SOURCE, TARGET, steps=2, guidance=2.0, progress=False)


def _without_guidance(forward):
    def checked(*args, guidance=None, **kwargs):
        assert guidance is None, "a model without a guidance embedding was given guidance"
        return forward(*args, guidance=torch.ones(kwargs["hidden_states"].shape[0]), **kwargs)
    return checked


def _feature_hooks(pipe) -> int:
    return sum(len(m._forward_hooks) for m in pipe.transformer.modules())


def test_hooks_removed_after_success_and_after_an_exception_and_processors_untouched(pipe, image, monkeypatch):
    before = dict(pipe.transformer.attn_processors)
    assert all(type(p) is FluxAttnProcessor for p in before.values()) and _feature_hooks(pipe) == 0
    edit(pipe, image, SOURCE, TARGET, steps=2, strategy="replace_v+add_q+add_k", progress=False)
    assert _feature_hooks(pipe) == 0

    def failing_decode(*args):
        raise RuntimeError("decoder failed")

    from fireflow_edu.flux.adapter import FluxAdapter

    monkeypatch.setattr(FluxAdapter, "decode", failing_decode)  # fails after inversion and denoising
    with pytest.raises(RuntimeError, match="decoder failed"):
        edit(pipe, image, SOURCE, TARGET, steps=2, progress=False)
    assert _feature_hooks(pipe) == 0
    after = pipe.transformer.attn_processors
    assert all(after[k] is before[k] for k in before)  # diffusers' own processors ran throughout


def test_idle_hooks_leave_diffusers_output_unchanged(pipe):
    adapter = editing.model_adapter(pipe)
    noise, conditioning = adapter.noise(32, 48, seed=2), adapter.encode_prompt(SOURCE)
    grid = adapter.schedule(2, noise)
    plain = adapter.velocity(conditioning, 32, 48, grid, 2.0)(noise, float(grid[1]))
    with adapter.feature_hooks(AttentionFeatures("replace_v+add_q+add_k", 1, adapter.resolve_blocks(None))):
        hooked = adapter.velocity(conditioning, 32, 48, grid, 2.0)(noise, float(grid[1]))
    assert torch.equal(plain, hooked) and plain.abs().max() > 0.1


def test_each_strategy_term_on_hand_made_tensors():
    current, stored = torch.full((1, 2, 3), 2.0), torch.full((1, 2, 3), 5.0)
    assert torch.equal(inject(("replace_v",), "v", current, stored), stored)
    assert torch.equal(inject(("replace_v",), "q", current, stored), current)  # V only
    for term in ("add_q", "add_k", "add_v"):
        assert torch.equal(inject((term,), term[-1], current, stored), torch.full((1, 2, 3), 7.0))
        assert torch.equal(inject((term,), "v" if term != "add_v" else "q", current, stored), current)
    both = torch.full((2, 2, 3), 2.0)  # one stored row serves both classifier-free guidance branches
    assert torch.equal(inject(("replace_v", "add_k"), "k", both, stored), torch.full((2, 2, 3), 7.0))


def test_cache_device_is_where_the_stored_features_live(pipe, image):
    inversion = invert(pipe, image, SOURCE, steps=2, inject=1, cache_device="meta", progress=False)
    tensors = [t for feats in inversion.features.stored.values() for t in feats.values()]
    assert tensors and all(t.device.type == "meta" for t in tensors)
    kept = invert(pipe, image, SOURCE, steps=2, inject=1, progress=False)
    assert all(t.device.type == "cpu" for feats in kept.features.stored.values() for t in feats.values())


def test_cache_can_live_on_cpu(pipe, image):
    result = edit(pipe, image, SOURCE, TARGET, steps=2, cache_device="cpu", progress=False)
    per_block = (32 + 20) * 2 * 16 * 4  # (32 text + 20 image tokens) x heads x head_dim x fp32
    assert result.cache_bytes == per_block * 3  # one "mid" evaluation stored, three blocks


@pytest.mark.parametrize("kwargs,message", [
    ({"strategy": "replace_k"}, "unknown strategy"),
    ({"strategy": "replace_v+add_v"}, "choose one"),
    ({"method": "heun"}, "valid methods"),
    ({"inject": 9}, "inject must be an integer between 0 and steps"),
    ({"steps": 0}, "steps must be a positive integer"),
    ({"blocks": [7]}, "single-stream blocks in 0..2"),
])
def test_bad_edit_arguments(pipe, image, kwargs, message):
    with pytest.raises(ValueError, match=message):
        edit(pipe, image, SOURCE, TARGET, **{"steps": 8, **kwargs}, progress=False)


def test_bad_images(pipe):
    with pytest.raises(ValueError, match="at least 16x16"):
        edit(pipe, np.zeros((8, 64, 3), np.uint8), SOURCE, TARGET, progress=False)
    with pytest.raises(ValueError, match="empty"):
        reconstruct(pipe, np.zeros((0, 5, 3), np.uint8), SOURCE, progress=False)


def test_missing_weights_explain_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(FileNotFoundError, match="hf auth login"):
        load_pipeline("black-forest-labs/FLUX.1-dev", device="cpu")
    with pytest.raises(FileNotFoundError, match="gated"):
        load_pipeline(tmp_path / "no-such-dir", device="cpu")
    with pytest.raises(ValueError, match="needs device='cuda'"):
        load_pipeline(tmp_path, device="cpu", offload=True)


def test_ssim_of_flat_images_is_its_luminance_term():
    # flat images have no variance: SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1), C1 = (0.01 * 255)^2
    a, b = np.full((16, 16, 3), 100, np.uint8), np.full((16, 16, 3), 140, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 140 + c1) / (100**2 + 140**2 + c1), rel=1e-5)
    with pytest.raises(ValueError, match="11 pixels"):
        ssim(a[:8, :8], b[:8, :8])


def test_image_metrics():
    a = np.zeros((16, 16, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 64
    assert rmse_255(a, b) == pytest.approx(64 / np.sqrt(768))
    assert psnr(a, b) == pytest.approx(20 * np.log10(255 / (64 / np.sqrt(768))))
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    mask = np.zeros((16, 16), bool)
    mask[0, 0] = True  # the changed pixel is inside the edit region: the background is untouched
    assert masked_psnr(a, b, mask) == float("inf")
    assert masked_psnr(a, b, ~mask) == pytest.approx(20 * np.log10(255 / (64 / np.sqrt(3))))
    with pytest.raises(ValueError, match="whole image"):
        masked_psnr(a, b, np.ones((16, 16), bool))


def test_lpips_without_weights_is_absent_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty hub cache, on any machine
    with pytest.warns(UserWarning, match="LPIPS skipped"):
        assert lpips_distance(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8, 3), np.uint8)) is None
