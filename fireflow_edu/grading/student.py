"""Student notebooks from solution notebooks: one source of truth.

In a solution notebook, each exercise's answer sits between markers in a code cell:

    def euler_step(v, x, t, h, cache):
        ### BEGIN SOLUTION Exercise A.1: the Euler update
        return x + h * v(x, t)
        ### END SOLUTION

The student version keeps everything else and replaces each marked block with
``raise NotImplementedError("Exercise A.1: the Euler update")`` at the same
indentation. ``python -m fireflow_edu assignments`` regenerates the student copies;
``--check`` fails if any is out of date.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

ASSIGNMENTS = Path(__file__).resolve().parents[2] / "notebooks" / "assignments"
SOLUTIONS, STUDENT = ASSIGNMENTS / "solutions", ASSIGNMENTS / "student"
BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION (?P<label>.+?)\s*$")
END = re.compile(r"^[ \t]*### END SOLUTION\s*$")


def strip_solutions(source: str) -> str:
    """Replace every marked solution block in a cell's source by a NotImplementedError."""
    out, inside = [], False
    for line in source.splitlines():
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise ValueError(f"nested BEGIN SOLUTION: {line!r}")
            inside = True
            out.append(f'{begin["indent"]}raise NotImplementedError({begin["label"]!r})')
        elif END.match(line):
            if not inside:
                raise ValueError("END SOLUTION without BEGIN SOLUTION")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("BEGIN SOLUTION without END SOLUTION")
    return "\n".join(out)


def student_notebook(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``solution`` with solutions stripped and outputs cleared."""
    notebook = nbformat.from_dict(solution)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source)
            cell.outputs, cell.execution_count = [], None
    return notebook


def build(check: bool = False, solutions: Path = SOLUTIONS, student: Path = STUDENT) -> list[Path]:
    """Write (or with ``check``, compare) the student copy of every solution notebook; returns stale paths."""
    stale = []
    for path in sorted(solutions.glob("*.ipynb")):
        expected = student_notebook(nbformat.read(path, as_version=4))
        target = student / path.name
        current = nbformat.read(target, as_version=4) if target.exists() else None
        if current is None or [c.source for c in current.cells] != [c.source for c in expected.cells]:
            stale.append(target)
            if not check:
                target.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(expected, target)
    return stale
