"""The built wheel is the whole package: installed outside the repository into a venv that holds exactly its declared
dependencies (linked from this environment, so nothing undeclared can be imported), it loads the shipped mini FLUX
and grades the assignments' student copies it carries; the solutions are not in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # builds the wheel and a venv: over 10 s

LOAD_MINI = """
import fireflow_edu
from fireflow_edu.editing import reconstruct
from fireflow_edu.mini.model import load_mini_pipeline
from fireflow_edu.mini.scenes import random_scene
scene = random_scene(123_456)
result = reconstruct(load_mini_pipeline(), scene.render(), scene.caption, steps=8, progress=False)
print(fireflow_edu.__file__, result.metrics["psnr"])
"""


def declared_closure(requirements: list[str], extras: set[str]) -> set[str]:
    """Names of the distributions ``requirements`` need, transitively, as installed in this environment."""
    from importlib import metadata

    from packaging.requirements import Requirement

    wanted, seen = list(requirements), set()
    while wanted:
        requirement = Requirement(wanted.pop())
        if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in extras | {""}):
            continue
        name = requirement.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        distribution = metadata.distribution(name)
        wanted += [r for r in distribution.requires or []
                   if "extra ==" not in r or any(f'extra == "{e}"' in r for e in requirement.extras)]
    return seen


def site_of(names: set[str], folder: Path) -> Path:
    """A folder holding links to exactly the files of distributions ``names`` from this environment."""
    from importlib import metadata

    folder.mkdir()
    for name in names:
        distribution = metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in distribution.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            source = Path(distribution.locate_file(top))
            if source.exists() and not (folder / top).exists():
                (folder / top).symlink_to(source)
    return folder


def test_wheel_installs_and_runs_outside_the_repository(tmp_path):
    source = tmp_path / "source"  # build from a copy: a build in place would leave build/ and egg-info behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "fireflow_edu", source / "fireflow_edu", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("fireflow_edu-*.whl"))
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    assert "fireflow_edu/mini/pretrained/transformer/diffusion_pytorch_model.safetensors" in names
    assert "fireflow_edu/grading/assignments/c_fireflow_step.ipynb" in names  # the student copy
    assert not any("BEGIN SOLUTION" in archive.read(n).decode(errors="replace")
                   for n in names if n.endswith(".ipynb"))  # and never the solutions
    metadata = archive.read(next(n for n in names if n.endswith("dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]

    def environment(extras: set[str]) -> tuple[Path, dict]:
        """A venv with the wheel and exactly its declared dependencies for ``extras`` (linked from this one)."""
        env_dir = tmp_path / f"venv-{'-'.join(sorted(extras)) or 'core'}"
        venv.create(env_dir, with_pip=False)
        python = env_dir / "bin" / "python"
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                        str(wheel)], check=True, capture_output=True)
        site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        linked = site_of(declared_closure(requires, extras), env_dir / "declared")
        (Path(site) / "declared_dependencies.pth").write_text(f"{linked}\n")
        return python, site

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}

    def run(python, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([python, *args], cwd=work, env=env, capture_output=True, text=True)
        assert (result.returncode == 0) == ok, result.stderr
        return result

    python, site = environment({"flux", "grading"})
    package, psnr = run(python, "-c", LOAD_MINI).stdout.split()
    assert package.startswith(site) and float(psnr) > 30  # the trained weights (a random model gives ~10 dB)
    # a teacher with the wheel grades; the solutions are not there to build from
    submissions = work / "submissions"
    submissions.mkdir()
    shutil.copy(Path(site) / "fireflow_edu" / "grading" / "assignments" / "a_euler_step.ipynb", submissions / "s.ipynb")
    graded = run(python, "-m", "fireflow_edu", "grade", str(submissions), "--assignment", "a_euler_step",
                 "--out", str(work / "grades.csv")).stdout
    assert "0/2  Exercise A.1: euler_step failed on the grader's inputs: NotImplementedError" in graded
    assert "teacher material" in run(python, "-m", "fireflow_edu", "assignments", "--check", ok=False).stderr

    core, _ = environment(set())  # a missing extra is named, with the command to install it
    for command, extra in (("grade", "grading"), ("edit", "flux")):
        error = run(core, "-m", "fireflow_edu", command, "--help", ok=False).stderr
        assert f"pip install 'fireflow_edu[{extra}]'" in error, error
