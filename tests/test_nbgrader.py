"""The assignments in nbgrader: generate_assignment and autograde on a temporary course give the scores our own
``grade`` gives, for a correct and a wrong submission."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from fireflow_edu.cli import main
from fireflow_edu.grading.student import SOLUTIONS, nbgrader_metadata

ASSIGNMENT = "a_euler_step"
WRONG_EULER = "def euler_step(v, x, t, h, cache):\n    return x - h * v(x, t)"  # the sign slip of a sampler


def nbgrader(course: Path, *args: str) -> None:
    # nbgrader runs its gradebook migrations with the `alembic` command: found on PATH, as in an activated venv
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def submission(release, solution, replace: dict) -> nbformat.NotebookNode:
    """The released notebook with every solution cell answered: from the solution, or by ``replace[grade_id]``."""
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution.cells if "nbgrader" in c.metadata}
    notebook = nbformat.from_dict(release)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if grade_id.startswith("solution_"):
            cell.source = replace.get(grade_id, answers[grade_id])
    return notebook


def test_markers_give_nbgrader_metadata():
    cells = nbformat.read(SOLUTIONS / f"{ASSIGNMENT}.ipynb", as_version=4).cells
    metadata = [c.metadata.get("nbgrader") for c in cells if c.cell_type == "code"]
    assert [m and m["grade_id"] for m in metadata] == [None, "solution_a1", "check_a1", "solution_a2", "check_a2",
                                                       None]
    assert [m["points"] for m in metadata if m and m["grade"]] == [1, 1]
    assert all(m["locked"] for m in metadata if m and m["grade"])
    assert nbgrader_metadata(nbformat.v4.new_markdown_cell("### BEGIN SOLUTION Exercise A.1: x")) is None


@pytest.mark.slow
def test_nbgrader_generate_and_autograde_agree_with_grade(tmp_path):
    course = tmp_path / "course"
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    solution = nbformat.read(SOLUTIONS / f"{ASSIGNMENT}.ipynb", as_version=4)
    nbformat.write(solution, source / f"{ASSIGNMENT}.ipynb")
    (course / "nbgrader_config.py").write_text(f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\n")
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    release = nbformat.read(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    assert "raise NotImplementedError()" in "\n".join(c.source for c in release.cells)
    assert "x + h * v(x, t)" not in "\n".join(c.source for c in release.cells)

    answers = {"good": {}, "bad": {"solution_a1": WRONG_EULER}}
    folder = tmp_path / "submissions"
    folder.mkdir()
    for student, replace in answers.items():
        notebook = submission(release, solution, replace)
        (course / "submitted" / student / ASSIGNMENT).mkdir(parents=True)
        nbformat.write(notebook, course / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
        nbformat.write(notebook, folder / f"{student}.ipynb")
    nbgrader(course, "autograde", ASSIGNMENT, "--force")

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {s: gradebook.find_submission(ASSIGNMENT, s).score for s in answers}
        assert gradebook.find_submission(ASSIGNMENT, "good").max_score == 2
    assert scores == {"good": 2, "bad": 1}

    out = tmp_path / "grades.csv"
    assert main(["grade", str(folder), "--assignment", ASSIGNMENT, "--out", str(out)]) == 0
    ours = {row["student"]: row for row in csv.DictReader(out.open())}
    assert {s: int(row["score"]) for s, row in ours.items()} == scores
    assert ours["bad"]["Exercise A.1"] == "0" and ours["bad"]["Exercise A.2"] == "1"
