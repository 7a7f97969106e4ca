"""Student notebooks from solution notebooks: one source of truth.

In a solution notebook, each exercise's answer sits between markers in a code cell:

    def euler_step(v, x, t, h, cache):
        ### BEGIN SOLUTION Exercise A.1: the Euler update
        return x + h * v(x, t)
        ### END SOLUTION

The student version keeps everything else and replaces each marked block with
``raise NotImplementedError("Exercise A.1: the Euler update")`` at the same
indentation. ``python -m fireflow_edu assignments`` regenerates the student copies (shipped in the
package) from the solutions (in the repository's ``notebooks/assignments``, never in the package);
``--check`` fails if any is out of date.

The same markers give nbgrader's cell metadata, so a course on JupyterHub can use
``nbgrader generate_assignment`` and ``nbgrader autograde`` on the solution notebooks:
a cell with a solution block is a solution cell (grade id ``solution_a1``), and each
``# CHECK Exercise A.1`` cell is a locked test cell worth one point (``check_a1``),
scored as the package's own ``grade`` scores it: it passes when it runs without error.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import nbformat

# The student copies are package data; the solutions are teacher material, kept in the repository only
# (an editable install finds them beside the package; a wheel install has none: pass --solutions DIR).
STUDENT = Path(str(files("fireflow_edu.grading") / "assignments"))
SOLUTIONS = Path(__file__).resolve().parents[2] / "notebooks" / "assignments"
BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION (?P<label>.+?)\s*$")
END = re.compile(r"^[ \t]*### END SOLUTION\s*$")
CHECK = re.compile(r"^# CHECK (?P<exercise>Exercise [^\n:]+)")
NBGRADER_SCHEMA = 3


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


def exercise_id(label: str) -> str:
    """"Exercise A.1: the Euler update" -> "a1", usable in an nbgrader grade id."""
    return re.sub(r"[^a-z0-9]", "", label.split(":")[0].removeprefix("Exercise").lower())


def nbgrader_metadata(cell) -> dict | None:
    """nbgrader's metadata for a cell, from its markers: None for a cell nbgrader leaves alone."""
    if cell.cell_type != "code":
        return None
    labels = [BEGIN.match(line)["label"] for line in cell.source.splitlines() if BEGIN.match(line)]
    check = CHECK.match(cell.source)
    if labels:
        return {"grade": False, "grade_id": "solution_" + "_".join(exercise_id(label) for label in labels),
                "locked": False, "schema_version": NBGRADER_SCHEMA, "solution": True, "task": False}
    if check:
        return {"grade": True, "grade_id": "check_" + exercise_id(check["exercise"]), "locked": True, "points": 1,
                "schema_version": NBGRADER_SCHEMA, "solution": False, "task": False}
    return None


def with_nbgrader_metadata(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``notebook`` whose cells carry exactly the nbgrader metadata their markers imply."""
    notebook = nbformat.from_dict(notebook)
    for cell in notebook.cells:
        cell.metadata.pop("nbgrader", None)
        metadata = nbgrader_metadata(cell)
        if metadata is not None:
            cell.metadata["nbgrader"] = metadata
    return notebook


def student_notebook(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``solution`` with solutions stripped and outputs cleared."""
    notebook = nbformat.from_dict(solution)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source)
            cell.outputs, cell.execution_count = [], None
    return notebook


def _cells(notebook) -> list:
    return [(c.source, c.metadata.get("nbgrader")) for c in notebook.cells]


def solution_folder(path: Path | None = None) -> Path:
    """``path``, or the repository's solutions; a clear error where there are none (a wheel install)."""
    folder = Path(path) if path is not None else SOLUTIONS
    if not any(folder.glob("*.ipynb")):
        raise FileNotFoundError(f"no solution notebooks in {folder}: the solutions are teacher material, kept in "
                                "the repository's notebooks/assignments and not in the installed package; "
                                "pass --solutions DIR")
    return folder


def _readable(path: Path) -> nbformat.NotebookNode | None:
    """The notebook at ``path``; None if there is none or it cannot be read as one."""
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError):  # nbformat's NotJSONError is a ValueError
        return None


def _holds_solutions(path: Path) -> bool:
    """Whether the notebook at ``path`` has a ``### BEGIN SOLUTION`` marker in a code cell."""
    notebook = _readable(path)
    return notebook is not None and any(BEGIN.match(line) for cell in notebook.cells if cell.cell_type == "code"
                                        for line in cell.source.splitlines())


def _refuse_to_replace(student: Path, solutions: Path, replaced: list[Path], overwrite: bool) -> None:
    """A ValueError, before anything is written, when writing the student copies into ``student`` would lose a
    teacher's or a student's work: ``student`` is the solutions folder itself, or (unless ``overwrite``) holds
    solution notebooks or a notebook the copies would replace."""
    if student.resolve() == solutions.resolve():
        raise ValueError(f"--student {student} is the solutions folder: the student copies would replace the "
                         "solutions; give another folder")
    if overwrite:
        return
    solution_notebooks = sorted(path.name for path in student.glob("*.ipynb") if _holds_solutions(path))
    if solution_notebooks:
        raise ValueError(f"--student {student} holds solution notebooks (### BEGIN SOLUTION in "
                         f"{', '.join(solution_notebooks)}); give another folder, or pass --overwrite")
    if replaced:
        raise ValueError(f"--student {student} holds {', '.join(path.name for path in replaced)}, which the "
                         "student copies would replace; give another folder, or pass --overwrite")


def build(check: bool = False, solutions: Path | None = None, student: Path = STUDENT,
          overwrite: bool = False) -> list[Path]:
    """Give every solution notebook its nbgrader metadata and write its student copy (with ``check``,
    only compare); returns the stale paths.

    The package's own copies (``STUDENT``) are generated files, rewritten whenever stale. Any other ``student``
    folder is refused before anything is written if the copies would replace a notebook there or it holds
    solution notebooks, unless ``overwrite``; the solutions folder itself always is."""
    solutions, student = solution_folder(solutions), Path(student)
    stale = {}  # path -> the notebook it should hold
    for path in sorted(solutions.glob("*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        annotated = with_nbgrader_metadata(solution)
        copy = student / path.name
        for target, current, expected in ((path, solution, annotated),
                                          (copy, _readable(copy), student_notebook(annotated))):
            if current is None or _cells(current) != _cells(expected):
                stale[target] = expected
    if check:
        return list(stale)
    if student.resolve() != STUDENT.resolve():
        replaced = sorted(target for target in stale if target.parent == student and target.exists())
        _refuse_to_replace(student, solutions, replaced, overwrite)
    for target, expected in stale.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(expected, target)
    return list(stale)
