"""The FLUX command line and the batch runner, on the tiny model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fireflow_edu.cli import main


def test_edit_command_writes_image_and_report(tmp_path):
    out = tmp_path / "edit"
    assert main(["edit", "--image", "skimage:chelsea", "--source-prompt", "a cat", "--target-prompt", "a dog",
                 "--tiny", "--guidance", "1,2,2,2,2,2,2,2", "--blocks", "0-1", "--out", str(out)]) == 0
    report = json.loads((out / "edited.json").read_text())
    assert report["nfe"] == 18 and report["nfe_inversion"] == 9
    assert report["settings"]["blocks"] == [0, 1] and report["settings"]["guidance"][0] == 1.0
    assert report["model"].startswith("tiny FLUX (random weights")
    assert Image.open(out / "edited.png").size == Image.open(out / "source.png").size == (448, 288)


def test_reconstruct_command_reports_metrics(tmp_path):
    out = tmp_path / "rec"
    assert main(["reconstruct", "--image", "skimage:coffee", "--prompt", "a cup", "--steps", "4",
                 "--method", "euler", "--tiny", "--out", str(out)]) == 0
    report = json.loads((out / "reconstruction.json").read_text())
    assert report["nfe"] == 8
    assert {"rmse_255", "psnr", "ssim", "latent_rmse"} <= set(report["metrics"])


def test_commands_report_bad_input_without_traceback(tmp_path, capsys):
    assert main(["reconstruct", "--image", str(tmp_path / "none.png"), "--tiny"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["edit", "--image", "skimage:chelsea", "--source-prompt", "a", "--target-prompt", "b",
                 "--tiny", "--inject", "9", "--out", str(tmp_path)]) == 2
    assert "inject must be an integer between 0 and steps" in capsys.readouterr().err
    assert main(["reconstruct", "--image", "skimage:chelsea", "--model", str(tmp_path / "nowhere")]) == 2
    assert "hf auth login" in capsys.readouterr().err


def test_commands_never_overwrite_their_input_and_check_arguments_before_loading(tmp_path, capsys, monkeypatch):
    import fireflow_edu.editing.commands as commands

    def no_loading(args):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(commands, "pipeline_from_options", no_loading)
    photo = tmp_path / "source.png"
    Image.fromarray(np.full((300, 451, 3), 90, np.uint8)).save(photo)
    before = photo.read_bytes()
    edit = ["edit", "--source-prompt", "a", "--target-prompt", "b", "--tiny"]
    assert main([*edit, "--image", str(photo), "--out", str(tmp_path)]) == 2
    assert "would overwrite the input image" in capsys.readouterr().err and photo.read_bytes() == before
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    assert main([*edit, "--image", str(notes), "--out", str(tmp_path / "o")]) == 2
    assert "is not an image" in capsys.readouterr().err
    assert main(["reconstruct", "--image", str(photo), "--tiny", "--out", str(notes)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["reconstruct", "--image", str(tmp_path / "missing.png"), "--tiny"]) == 2
    assert "not found" in capsys.readouterr().err


def test_bench_command_on_the_tiny_model(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--tiny", "--sizes", "64", "--repeats", "1", "--text-tokens", "16", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    row = results["sizes"]["64"]
    nfe = {label: entry["nfe"] for label, entry in row["configs"].items()}
    assert nfe == {"euler_28": 56, "rf_solver_15": 60, "fireflow_8": 18, "fireflow_15": 32, "rf_inversion_28": 56,
                   "flowedit_28": 48}
    seconds = {label: entry["seconds"] for label, entry in row["configs"].items()}
    for label, entry in row["configs"].items():  # the reported ratios are computed from the timings
        assert entry["speedup_vs_euler_28"] == pytest.approx(seconds["euler_28"] / seconds[label])
        assert entry["seconds_per_nfe"] == pytest.approx(seconds[label] / nfe[label])
    assert row["fireflow_8_vs_18_calls"] == pytest.approx(seconds["fireflow_8"] / (18 * row["single_call_seconds"]))


def _cases(tmp_path):
    mask = np.zeros((300, 451, 3), np.uint8)
    mask[100:200, 150:300] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    lines = [
        {"id": "cat", "image": "skimage:chelsea", "source_prompt": "a cat", "target_prompt": "a dog", "mask": "mask.png"},
        {"id": "cup", "image": "skimage:coffee", "source_prompt": "a cup", "target_prompt": "a red cup"},
        {"id": "broken", "image": "missing.png", "source_prompt": "a", "target_prompt": "b"},
    ]
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_batch_runner_single_process(tmp_path):
    cases = _cases(tmp_path)
    assert main(["batch", "--cases", str(cases), "--out", str(tmp_path / "out"), "--tiny", "--steps", "4"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == ["cat", "cup", "broken"]
    assert rows[0]["nfe"] == 10 and "background_psnr" in rows[0] and "background_psnr" not in rows[1]
    assert "not found" in rows[2]["error"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["cases"] == 2 and summary["failed"] == 1 and summary["processes"] == 1
    assert {row["process"] for row in rows} == {0} and "mean_process" not in summary


SHARDED_RUN = """
import json, os, sys, time
from pathlib import Path

from fireflow_edu.editing import batch

cases, out = Path(sys.argv[1]), Path(sys.argv[2])
rank = int(os.environ["RANK"])
if rank == 1:
    time.sleep(3)  # a late rank: it must get the main process's to-do list, whatever the filesystem says by now
read_cases = batch.read_cases


def spy(path):
    (out / f"read.rank{rank}").write_text("")
    return read_cases(path)


def make_pipeline(device):
    from accelerate import PartialState

    (out / f"loaded.rank{rank}.json").write_text(json.dumps([str(device), str(PartialState().device)]))
    from fireflow_edu.flux.tiny import build_tiny_pipeline

    return build_tiny_pipeline().to(device)


batch.read_cases = spy
batch.run_cases(cases, out, make_pipeline, steps=2)
import torch.distributed
(out / f"ended.rank{rank}").write_text(str(not torch.distributed.is_initialized()))
"""


def aborted_in_teardown_after_finishing(run, out: Path) -> bool:
    """Rank 0 of this gloo run on CPU has, now and then, aborted in interpreter teardown ("terminate called
    without an active exception", SIGABRT) after every rank had finished, written its results and left the
    process group: 2 of 7 clean-clone suite runs, none of 16 runs of the script alone (8 beside CPU burners).
    That is torch's exit (pytorch/pytorch#190489 reports the same abort), not the sharding this test checks;
    anything else fails."""
    ended = all((out / f"ended.rank{r}").exists() and (out / f"ended.rank{r}").read_text() == "True" for r in (0, 1))
    return ended and "terminate called without an active exception" in run.stderr and "exitcode  : -6" in run.stderr


@pytest.mark.slow
def test_batch_runner_shards_across_two_processes(tmp_path):
    # torchrun starts ranks the way accelerate's multi-process launcher does; on CPU the ranks use gloo.
    cases, out = _cases(tmp_path), tmp_path / "out"
    out.mkdir()
    (tmp_path / "sharded_run.py").write_text(SHARDED_RUN)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               str(tmp_path / "sharded_run.py"), str(cases), str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONFAULTHANDLER": "1"})  # an abort prints every thread's stack
    assert run.returncode == 0 or aborted_in_teardown_after_finishing(run, out), run.stderr[-3000:]
    assert sorted(p.name for p in out.glob("read.rank*")) == ["read.rank0"]  # the list is decided once, on rank 0
    # each rank loads its pipeline straight onto the device PartialState gave it (a CPU here, cuda:R on GPUs)
    for r in (0, 1):
        given, ranks_own = json.loads((out / f"loaded.rank{r}.json").read_text())
        assert given == ranks_own and given.startswith("cpu")
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == ["cat", "cup", "broken"]  # gathered, in case order
    assert [row["process"] for row in rows] == [0, 0, 1]  # disjoint contiguous shares: 2 cases, then 1
    assert rows[0]["nfe"] == 6 and "not found" in rows[2]["error"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["cases"] == 2 and summary["failed"] == 1
    assert not list(out.glob("results.rank*"))  # results travel through accelerate, not per-rank files
    # every rank leaves the process group once all are done: none exits while another still talks to it
    assert [(out / f"ended.rank{r}").read_text() for r in (0, 1)] == ["True", "True"]


@pytest.mark.slow
def test_the_shipped_mini_flux_runs_from_the_command_line_with_default_arguments(tmp_path):
    from fireflow_edu.mini.model import SHIPPED
    from fireflow_edu.mini.scenes import make_edit

    case = make_edit(5, "change_color")  # by name (mini) and by folder, as a copy of it would be given
    Image.fromarray(case.source.render()).save(tmp_path / "scene.png")
    assert main(["edit", "--image", str(tmp_path / "scene.png"), "--source-prompt", case.source.caption,
                 "--target-prompt", case.target.caption, "--model", "mini", "--out", str(tmp_path / "e")]) == 0
    report = json.loads((tmp_path / "e" / "edited.json").read_text())
    # a mini FLUX.1-dev: "auto" guidance is FLUX.1-dev's, 1 to invert and 2 to edit
    assert report["nfe"] == 18 and report["settings"]["guidance"] == 2.0 and report["settings"]["inversion_guidance"] == 1.0
    # a fresh process, stderr not a terminal: no notes about torchvision, the mini VAE's type or loading bars
    run = subprocess.run([sys.executable, "-m", "fireflow_edu", "reconstruct", "--image", str(tmp_path / "scene.png"),
                          "--prompt", case.source.caption, "--model", str(SHIPPED), "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "torchvision" not in run.stderr and "Expected types" not in run.stderr and "Loading" not in run.stderr
    assert "fireflow:" not in run.stderr  # no progress bars in a log
    assert json.loads((tmp_path / "r" / "reconstruction.json").read_text())["metrics"]["psnr"] > 30


@pytest.mark.slow
def test_the_gpu_check_script_runs_every_step_on_the_tiny_model(tmp_path):
    """benchmarks/gpu_check.py is run once on a lent GPU: its --tiny mode runs the same steps here, so it cannot rot."""
    import runpy

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"))
    assert script["main"](["--tiny", "--out", str(tmp_path / "check.json")]) == 0
    results = json.loads((tmp_path / "check.json").read_text())
    assert results["edit"]["nfe"] == 18 and results["edit"]["single_call_seconds"] > 0
    assert results["bench"]["sizes"]["64"]["configs"]["fireflow_8"]["nfe"] == 18
    summary = results["piebench"]["summary"]
    assert summary["all"]["cases"] == 4 and summary["all"]["nfe"] == 18 and not summary["failed"]
    assert len(list((tmp_path / "check_piebench" / "run" / "annotation_images").rglob("*.jpg"))) == 4
