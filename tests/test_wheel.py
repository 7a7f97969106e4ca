"""The built wheel is the whole package: installed into a fresh venv outside the repository, it loads the shipped
mini FLUX and finds the assignment notebooks, with no repository on the path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LOAD_MINI = """
import fireflow_edu
from fireflow_edu.flux import reconstruct
from fireflow_edu.mini.model import load_mini_pipeline
from fireflow_edu.mini.scenes import random_scene
scene = random_scene(123_456)
result = reconstruct(load_mini_pipeline(), scene.render(), scene.caption, steps=8, progress=False)
print(fireflow_edu.__file__, result.metrics["psnr"])
"""


def test_wheel_installs_and_runs_outside_the_repository(tmp_path):
    source = tmp_path / "source"  # build from a copy: a build in place would leave build/ and egg-info behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "fireflow_edu", source / "fireflow_edu", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("fireflow_edu-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "fireflow_edu/mini/pretrained/transformer/diffusion_pytorch_model.safetensors" in names
    assert "fireflow_edu/grading/assignments/solutions/c_fireflow_step.ipynb" in names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # The dependencies (torch, diffusers, ...) come from this environment's site-packages as a plain path: its
    # .pth files, among them the editable install's finder, are not run, so only the wheel provides fireflow_edu.
    (Path(site) / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}

    def run(*args: str) -> str:
        result = subprocess.run([python, *args], cwd=work, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout

    package, psnr = run("-c", LOAD_MINI).split()
    assert package.startswith(site) and float(psnr) > 30  # the trained weights (a random model gives ~10 dB)
    assert "assignment notebooks up to date" in run("-m", "fireflow_edu", "assignments", "--check")
