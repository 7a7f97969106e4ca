"""What issue 32's probes add to the mini FLUX: composition errors read apart (binding apart from shape), captions in
left-to-right order, and a text side pretrained contrastively and then frozen."""

import json
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from fireflow_edu.mini.model import build_mini_pipeline, load_mini_pipeline
from fireflow_edu.mini.scenes import Scene, Shape, in_caption_order, random_scene
from fireflow_edu.mini.batches import renders
from fireflow_edu.mini.detect import check_scene, composition, composition_error
from fireflow_edu.mini.text_pretraining import contrastive_loss, pretrain_text_encoders, swapped_colours
from fireflow_edu.mini.train import chain_minutes, run_minutes
from fireflow_edu.mini.train_config import TextConfig, TrainConfig, differing_settings

TWO = Scene("white", (Shape("circle", "red", 8.0, 16.0, 6.0), Shape("square", "blue", 24.0, 16.0, 6.0)))


@pytest.mark.parametrize("drawn, error", [
    (TWO, None),
    (replace(TWO, objects=TWO.objects[:1]), "count"),
    (replace(TWO, objects=(TWO.objects[0], replace(TWO.objects[1], color="green"))), "colour"),
    (swapped_colours(TWO), "binding"),  # a blue circle and a red square: right colours, right shapes, wrong pairs
    (replace(TWO, objects=(TWO.objects[0], replace(TWO.objects[1], kind="star"))), "shape"),
    (replace(TWO, background="pink"), "background"),
])
def test_composition_errors_tell_binding_from_shape_on_renders(drawn, error):
    assert composition_error(check_scene(drawn.render(), TWO)) == error


def test_composition_splits_captions_by_object_count():
    one = Scene("gray", TWO.objects[:1])
    checks = [check_scene(one.render(), one), check_scene(swapped_colours(TWO).render(), TWO),
              check_scene(TWO.render(), TWO), check_scene(one.render(), TWO)]
    shares = composition(checks, [one, TWO, TWO, TWO])
    assert shares["one_all"] == 1.0 and shares["two_all"] == pytest.approx(1 / 3)
    assert shares["two_binding"] == pytest.approx(1 / 3) and shares["two_count"] == pytest.approx(1 / 3)
    assert shares["two_shape"] == shares["two_colour"] == shares["two_background"] == 0.0


def test_swapped_colours_only_where_the_swap_names_another_scene():
    assert swapped_colours(TWO).caption == "a blue circle and a red square on a white background"
    assert swapped_colours(Scene("white", TWO.objects[:1])) is None
    same_shape = replace(TWO, objects=(TWO.objects[0], replace(TWO.objects[1], kind="circle")))
    assert swapped_colours(same_shape) is None


def test_left_to_right_captions_name_the_left_object_first_and_render_the_same():
    flipped = replace(TWO, objects=TWO.objects[::-1])
    assert flipped.caption.startswith("a blue square")
    ordered = in_caption_order(flipped, "left_to_right")
    assert ordered.caption == TWO.caption and np.array_equal(ordered.render(), flipped.render())
    for seed in range(30):
        scene = random_scene(seed)
        assert in_caption_order(scene, "drawn") == scene
        xs = [o.x for o in in_caption_order(scene, "left_to_right").objects]
        assert xs == sorted(xs)
    with pytest.raises(ValueError, match="drawn, left_to_right"):
        in_caption_order(TWO, "alphabetical")
    with pytest.raises(ValueError, match="caption_order"):
        TrainConfig(caption_order="random")


def test_a_checkpoint_from_before_a_setting_existed_resumes_as_its_default():
    saved = {k: v for k, v in TrainConfig().__dict__.items() if k != "caption_order"}
    assert differing_settings(saved, TrainConfig()) == []
    assert differing_settings(saved, TrainConfig(caption_order="left_to_right")) == ["caption_order"]


def test_the_contrastive_loss_is_finite_with_hard_negatives_and_reaches_the_text_encoders():
    pipe = build_mini_pipeline(seed=0)
    from fireflow_edu.mini.text_pretraining import Contrastive

    model = Contrastive(64)
    scenes = [TWO, Scene("pink", TWO.objects[:1]), random_scene(3, 2)]
    loss = contrastive_loss(model, pipe, renders(scenes), scenes)
    loss.backward()
    assert torch.isfinite(loss) and model.log_scale.grad is not None and torch.isfinite(model.log_scale.grad)
    for encoder in (pipe.text_encoder, pipe.text_encoder_2):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


TINY_TEXT = dict(steps=4, batch_size=8, warmup=1, eval_every=2, eval_scenes=40, checkpoint_every=1)


def test_text_pretraining_resumes_saves_encoders_a_fresh_mini_starts_from_and_counts_its_minutes(tmp_path):
    config = TextConfig(**TINY_TEXT)
    straight = build_mini_pipeline(seed=0)
    record = pretrain_text_encoders(straight, config, tmp_path / "straight", progress=False)
    assert [row["step"] for row in record["curve"]] == [2, 4]
    assert all(0 <= record["curve"][-1][key] <= 1 for key in ("binding_clip", "binding_t5", "retrieval_t5"))

    def interrupt(row):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        pretrain_text_encoders(build_mini_pipeline(seed=0), config, tmp_path / "resumed", progress=False,
                               on_eval=interrupt)
    resumed = build_mini_pipeline(seed=0)
    pretrain_text_encoders(resumed, config, tmp_path / "resumed", progress=False)
    for a, b in zip(straight.text_encoder_2.parameters(), resumed.text_encoder_2.parameters()):
        torch.testing.assert_close(a, b)

    fresh = build_mini_pipeline(seed=0, text_encoders=tmp_path / "straight")
    for a, b in zip(straight.text_encoder.parameters(), fresh.text_encoder.parameters()):
        torch.testing.assert_close(a, b)
    assert not any(torch.equal(a, b) for a, b in zip(build_mini_pipeline(seed=0).text_encoder_2.parameters(),
                                                      fresh.text_encoder_2.parameters()) if a.dim() > 1)
    with pytest.raises(ValueError, match="lacks text_encoder"):
        build_mini_pipeline(seed=0, text_encoders=tmp_path)
    text = json.loads((tmp_path / "straight" / "text_pretraining.json").read_text())
    run = {"init": {"text_pretraining": {**text, "minutes": 2.5}}, "teacher": {"minutes": 10.0}}
    assert chain_minutes(run) == 12.5
    # a checkpoint in the layout before the shared training phase: a clear error, not a KeyError mid-resume
    from fireflow_edu.mini.text_pretraining import CHECKPOINT

    (tmp_path / "old").mkdir()
    torch.save({"config": asdict(config), "encoders": {}, "step": 2}, tmp_path / "old" / CHECKPOINT)
    with pytest.raises(ValueError, match="holds no phase: an older fireflow_edu"):
        pretrain_text_encoders(build_mini_pipeline(seed=0), config, tmp_path / "old", progress=False)


def test_mini_train_takes_pretrained_text_encoders_frozen_and_records_them(tmp_path, capsys):
    from fireflow_edu.cli import main

    assert main(["mini-text", *[f"--{k.replace('_', '-')}={v}" for k, v in TINY_TEXT.items()],
                 "--out", str(tmp_path / "text")]) == 0
    assert "binding CLIP" in capsys.readouterr().out
    tiny = ["--batch-size", "2", "--eval-every", "1", "--eval-captions", "2", "--eval-reconstructions", "1"]
    assert main(["mini-train", "--text-encoders", str(tmp_path / "text"), "--teacher-steps", "1", "--distill-steps",
                 "0", "--caption-order", "left_to_right", *tiny, "--out", str(tmp_path / "mini")]) == 0
    assert "binding" in capsys.readouterr().out
    record = json.loads((tmp_path / "mini" / "training.json").read_text())
    assert record["init"]["text_encoders"] == str(tmp_path / "text") and record["config"]["caption_order"] == "left_to_right"
    assert record["init"]["text_pretraining"]["config"]["steps"] == 4
    assert {"two_all", "two_binding", "one_all"} <= set(record["teacher"]["curve"][-1])
    saved = build_mini_pipeline(seed=0, text_encoders=tmp_path / "mini")  # a trained mini's own encoders: unchanged
    for a, b in zip(saved.text_encoder_2.parameters(), build_mini_pipeline(seed=0, text_encoders=tmp_path / "text")
                    .text_encoder_2.parameters()):
        torch.testing.assert_close(a, b)


def test_mini_bench_update_measures_named_rows_of_either_section_again_and_keeps_the_rest():
    from fireflow_edu.mini.benchmark import update_rows
    from fireflow_edu.mini.model import load_mini_pipeline

    saved = {"counts": {"captions": 4, "reconstructions": 1, "edits": 2},
             "text_to_image": {"euler 20": {"nfe": 20, "all": 0.5}, "fireflow 10": {"nfe": 11, "all": 0.5}},
             "editing": {"euler 28": {"nfe": 56}, "fireflow 8": {"nfe": 18, "success": 2.0}}}
    updated = update_rows(load_mini_pipeline(), saved, ["fireflow 10", "fireflow 8"], progress=False)
    assert list(updated["text_to_image"]) == ["euler 20", "fireflow 10"] and list(updated["editing"]) == ["euler 28",
                                                                                                       "fireflow 8"]
    assert updated["text_to_image"]["euler 20"] == {"nfe": 20, "all": 0.5} and updated["editing"]["euler 28"] == {"nfe": 56}
    drawn = updated["text_to_image"]["fireflow 10"]
    assert drawn["nfe"] == 11 and {"one_all", "two_all", "two_binding"} <= set(drawn)
    assert 0 <= updated["editing"]["fireflow 8"]["success"] <= 1
    with pytest.raises(ValueError, match="unknown rows"):
        update_rows(load_mini_pipeline(), saved, ["fireflow 11"])


def test_mini_train_init_continues_a_model_on_a_pretrained_text_side_and_counts_its_minutes(tmp_path, capsys):
    from fireflow_edu.cli import main

    assert main(["mini-text", *[f"--{k.replace('_', '-')}={v}" for k, v in TINY_TEXT.items()],
                 "--out", str(tmp_path / "text")]) == 0
    tiny = ["--batch-size", "2", "--eval-every", "1", "--eval-captions", "2", "--eval-reconstructions", "1",
            "--distill-steps", "0"]
    assert main(["mini-train", "--teacher-steps", "1", *tiny, "--out", str(tmp_path / "random_text")]) == 0
    first = load_mini_pipeline(tmp_path / "random_text")
    assert main(["mini-train", "--init", str(tmp_path / "random_text"), "--text-encoders", str(tmp_path / "text"),
                 "--teacher-steps", "1", *tiny, "--out", str(tmp_path / "swapped")]) == 0
    capsys.readouterr()
    swapped = load_mini_pipeline(tmp_path / "swapped")
    pretrained = build_mini_pipeline(seed=0, text_encoders=tmp_path / "text")
    for name in ("text_encoder", "text_encoder_2"):  # saved with the model: the pretrained side, not the first
        for a, b, c in zip(getattr(swapped, name).parameters(), getattr(pretrained, name).parameters(),
                           getattr(first, name).parameters()):
            torch.testing.assert_close(a, b)
            assert a.dim() < 2 or not torch.equal(a, c)
    record = json.loads((tmp_path / "swapped" / "training.json").read_text())
    assert record["init"]["path"] == str(tmp_path / "random_text")
    assert record["init"]["text_encoders"] == str(tmp_path / "text")
    text_minutes = record["init"]["text_pretraining"]["minutes"]
    assert chain_minutes(record) == pytest.approx(run_minutes(record) + run_minutes(record["init"]["training"])
                                                  + text_minutes)
    assert main(["mini-train", "--init", str(tmp_path / "random_text"), "--autoencoder", "data/mini_autoencoder",
                 "--out", str(tmp_path / "refused")]) == 2
    assert "its own autoencoder" in capsys.readouterr().err and not (tmp_path / "refused").exists()
