"""PIE-Bench harness: mask decoding and region metrics against hand-computed values, absent weights reported
absent, and the command on the mini PIE-Bench (per-type table, resume, a broken case skipped)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fireflow_edu.cli import main
from fireflow_edu.piebench import harness as piebench
from fireflow_edu.piebench.harness import decode_mask, encode_mask, read_piebench, strip_brackets, summarize
from fireflow_edu.piebench.metrics import PieBenchScorer, dino_resize, keys_self_similarity, region_metrics
from fireflow_edu.mini.piebench import bracketed, blended_words, write_mini_piebench

ROOT = Path(__file__).resolve().parent.parent


def test_decode_mask_runs_clipping_and_the_forced_border():
    # 4 x 5 image: the run (6, 3) covers row 1, columns 1-3; (18, 10) runs past the end and is cut at 20
    expected = np.array([[1, 1, 1, 1, 1],
                         [1, 1, 1, 1, 1],
                         [1, 0, 0, 0, 1],
                         [1, 1, 1, 1, 1]], dtype=float)
    assert np.array_equal(decode_mask([6, 3, 18, 10], (4, 5)), expected)
    inner = np.zeros((4, 5))
    inner[1, 1:4] = 1  # interior only, so the border rule does not hide a wrong run
    assert np.array_equal(decode_mask([6, 3], (4, 5))[1:-1, 1:-1], inner[1:-1, 1:-1])
    assert np.array_equal(decode_mask([], (3, 3)), np.pad(np.zeros((1, 1)), 1, constant_values=1))
    with pytest.raises(ValueError, match="odd count"):
        decode_mask([1, 2, 3], (4, 5))


def test_encode_mask_is_decode_masks_inverse():
    mask = np.zeros((6, 7), dtype=bool)
    mask[1, 2:6] = mask[2, 0] = mask[4, 3:] = True
    assert encode_mask(mask) == [9, 4, 14, 1, 31, 4]
    assert np.array_equal(decode_mask(encode_mask(mask), (6, 7))[1:-1, 1:-1], mask[1:-1, 1:-1])


def test_prompts_lose_their_brackets_and_the_mini_captions_gain_them():
    assert strip_brackets("a [red] cat sitting on [the] mat") == "a red cat sitting on the mat"
    assert bracketed("a red star on a pink background", "a blue star on a pink background") == (
        "a [red] star on a pink background", "a [blue] star on a pink background")
    assert blended_words("a [red] star", "[an orange] star") == "red an orange"


def test_region_metrics_match_hand_values():
    source = np.zeros((16, 16, 3), dtype=np.uint8)
    mask = np.zeros((16, 16))
    mask[4:8, 4:12] = 1  # 32 of 256 pixels may change
    inside = source.copy()
    inside[4:8, 4:12] = 255
    row = region_metrics(source, inside, mask)  # a change only inside the mask is invisible to them
    assert row["mse_unedit"] == 0 and row["ssim_unedit"] == pytest.approx(1.0) and math.isinf(row["psnr_unedit"])
    everywhere = np.full_like(source, 51)  # 0.2 everywhere: squared error 0.04 on the 224 kept pixels
    row = region_metrics(source, everywhere, mask)
    mse = 0.04 * 224 / 256  # averaged over the whole image, zeroed region included, as the reference does
    assert row["mse_unedit"] == pytest.approx(mse, rel=1e-5)
    assert row["psnr_unedit"] == pytest.approx(10 * math.log10(1 / mse), rel=1e-5)
    assert row["ssim_unedit"] < 0.9
    assert region_metrics(source, everywhere, np.ones((16, 16))) == {
        "psnr_unedit": None, "mse_unedit": None, "ssim_unedit": None}


def test_dino_input_is_resized_as_torchvisions_resize_224_max_480():
    for (height, width), expected in (((512, 512), (224, 224)), ((512, 1024), (224, 448)),
                                      ((1024, 512), (448, 224)), ((300, 1200), (120, 480))):
        assert dino_resize(torch.zeros(1, 3, height, width)).shape[-2:] == expected
    # antialiased: a one-pixel checkerboard averages to grey; plain bilinear at 512 -> 224 would alias
    board = torch.from_numpy(np.indices((512, 512)).sum(0) % 2).float()[None, None].repeat(1, 3, 1, 1)
    assert (dino_resize(board) - 0.5).abs().max() < 0.05


def test_structure_distance_self_similarity_by_hand():
    keys = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    s = 1 / math.sqrt(2)
    assert torch.allclose(keys_self_similarity(keys), torch.tensor([[1, 0, s], [0, 1, s], [s, s, 1]]))


def test_metrics_without_weights_are_absent_never_zero(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.warns(UserWarning, match="reported absent") as caught:
        scorer = PieBenchScorer(clip=tmp_path / "no-clip", dino=tmp_path / "no-dino")
    message = str(caught[0].message)
    assert "no-clip not found" in message and "dino_vitbase8_pretrain.pth" in message and "lpips_unedit" in message
    assert set(scorer.absent) == {"lpips_unedit", "clip_whole", "clip_edited", "structure_distance"}
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    row = scorer.score(image, image, np.zeros((16, 16)), "a cat")
    assert all(row[name] is None for name in scorer.absent) and row["mse_unedit"] == 0


def test_summary_scales_like_the_paper_and_skips_nan_cases():
    rows = [{"editing_type": "1", "psnr_unedit": 20.0, "mse_unedit": 0.002, "structure_distance": None, "nfe": 18,
             "seconds": 1.0},
            {"editing_type": "1", "psnr_unedit": None, "mse_unedit": 0.004, "structure_distance": None, "nfe": 18,
             "seconds": 3.0},
            {"editing_type": "6", "psnr_unedit": 30.0, "mse_unedit": 0.001, "structure_distance": None, "nfe": 18,
             "seconds": 2.0}]
    summary = summarize(rows)
    assert summary["by_type"]["1"]["psnr_unedit"] == 20.0 and summary["by_type"]["1"]["mse_unedit"] == pytest.approx(30)
    assert summary["all"]["psnr_unedit"] == 25.0 and summary["all"]["structure_distance"] is None
    assert summary["all"]["cases"] == 3 and summary["all"]["seconds"] == 2.0


def test_the_shipped_mini_piebench_is_current(tmp_path):
    count = write_mini_piebench(tmp_path, per_kind=10)
    shipped = ROOT / "data" / "mini_piebench"
    assert count == 50
    mapping = json.loads((shipped / "mapping_file.json").read_text())
    assert mapping == json.loads((tmp_path / "mapping_file.json").read_text())
    cases = read_piebench(shipped)
    assert {c.editing_type for c in cases} == {"1", "2", "3", "6", "8"}
    assert all("[" not in c.source_prompt + c.target_prompt for c in cases)
    assert len({c.image.read_bytes() for c in cases}) == 50  # every case a scene of its own, across kinds too


def test_piebench_command_on_the_mini_benchmark_resumes_and_skips_a_broken_case(tmp_path, capsys, monkeypatch):
    data, out = tmp_path / "pie", tmp_path / "run"
    write_mini_piebench(data, per_kind=2)
    broken = read_piebench(data)[0]
    broken.image.write_text("not an image")
    args = ["piebench", "--data", str(data), "--model", "mini", "--out", str(out)]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "change background" in table and "absent" in table
    assert f"failed cases (see errors.jsonl): {broken.key}" in table
    summary = json.loads((out / "summary.json").read_text())
    assert summary["all"]["cases"] == 9 and summary["failed"] == [broken.key]
    assert summary["all"]["nfe"] == 18 and summary["all"]["clip_whole"] is None
    # real edits, scored outside the mask (the full mini PIE-Bench's colour changes: benchmarks/mini_piebench.json)
    assert summary["by_type"]["6"]["psnr_unedit"] > 15 and summary["by_type"]["6"]["ssim_unedit"] > 85
    edited = [p.relative_to(out) for p in (out / "annotation_images").rglob("*.png")]
    assert len(edited) == 9 and all(p.parts[0] == "annotation_images" for p in edited)

    called = []

    def still_broken(pipe, case, *args, **kwargs):
        called.append(case.key)
        raise ValueError("still broken")

    monkeypatch.setattr(piebench, "edit_piebench_case", still_broken)
    assert main(args) == 0 and called == [broken.key]  # a resumed run retries only the case that failed
    assert json.loads((out / "summary.json").read_text())["all"]["cases"] == 9


def test_piebench_scores_the_saved_jpeg_as_the_reference_formula_does(tmp_path):
    """PIE-Bench's paths are .jpg: the edit is saved as JPEG and the score is of that file, recomputed here from
    the saved images with the reference's formula (both images times the inverted mask, then MSE over all)."""
    from PIL import Image

    data, out = tmp_path / "pie", tmp_path / "run"
    write_mini_piebench(data, per_kind=1)
    mapping = json.loads((data / "mapping_file.json").read_text())
    for entry in mapping.values():  # as the real benchmark: JPEG sources under .jpg names
        png = data / "annotation_images" / entry["image_path"]
        entry["image_path"] = entry["image_path"].replace(".png", ".jpg")
        Image.open(png).resize((64, 64), Image.NEAREST).save(data / "annotation_images" / entry["image_path"])
        mask = decode_mask(entry["mask"], (32, 32)).repeat(2, 0).repeat(2, 1)[1:-1, 1:-1] > 0
        entry["mask"] = encode_mask(np.pad(mask, 1))
    (data / "mapping_file.json").write_text(json.dumps(mapping))
    assert main(["piebench", "--data", str(data), "--tiny", "--steps", "2", "--out", str(out)]) == 0
    for case in read_piebench(data):
        row = json.loads((out / "cases" / f"{case.key}.json").read_text())
        saved = out / "annotation_images" / case.image_path
        with Image.open(saved) as image:
            assert image.format == "JPEG"
            edited = np.asarray(image.convert("RGB"), dtype=np.float64) / 255
        source = np.asarray(Image.open(case.image).convert("RGB"), dtype=np.float64) / 255
        keep = 1 - case.mask(source.shape[:2])[..., None]
        mse = np.mean((source * keep - edited * keep) ** 2)
        assert row["mse_unedit"] == pytest.approx(mse, rel=1e-5)
        assert row["psnr_unedit"] == pytest.approx(10 * np.log10(1 / mse), abs=1e-4)


def test_piebench_command_checks_its_folders_first(tmp_path, capsys):
    assert main(["piebench", "--data", str(tmp_path), "--model", "mini", "--out", str(tmp_path / "o")]) == 2
    assert "mapping_file.json not found" in capsys.readouterr().err


def test_data_check_the_readme_shows_the_recorded_mini_piebench_table(capsys):
    """The README's mini PIE-Bench table is ``piebench --markdown benchmarks/mini_piebench.json``, not typed by hand."""
    main(["piebench", "--markdown", str(ROOT / "benchmarks" / "mini_piebench.json")])
    table = capsys.readouterr().out.strip()
    assert table.startswith("| editing type | cases | PSNR |") and "| **all** | 50 |" in table
    assert table in (ROOT / "README.md").read_text()


def test_data_check_the_readme_sets_the_recorded_peers_side_by_side(capsys):
    """The README's comparison of FireFlow, RF-Inversion, FlowEdit and masked FireFlow (blended, and blended with
    the background fit) on the mini PIE-Bench is ``piebench --markdown`` of the five recorded summaries, one row
    each, not typed by hand."""
    runs = ["mini_piebench.json", "mini_piebench_rf_inversion.json", "mini_piebench_flowedit.json",
            "mini_piebench_fireflow_masks.json", "mini_piebench_fireflow_masks_fit.json"]
    main(["piebench", "--markdown", *(str(ROOT / "benchmarks" / run) for run in runs)])
    table = capsys.readouterr().out.strip()
    rows = table.splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == ["| fireflow, steps 8, inject 1, method fireflow, strategy replace_v",
                                                     "| rf_inversion", "| flowedit", "| fireflow + PIE-Bench masks",
                                                     "| fireflow, mask_mode blend+fit + PIE-Bench masks"]
    assert [row.split(" | ")[-1] for row in rows] == ["18.00 |", "56.00 |", "48.00 |", "18.00 |", "18.00 |"]  # NFE
    assert table in (ROOT / "README.md").read_text()
