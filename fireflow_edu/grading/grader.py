"""Grade a folder of submitted assignment notebooks into a CSV.

For each submission the grader drops the student's own ``# CHECK`` cells, appends
the check cells of the assignment's solution notebook (so a check cannot be edited
away), and executes the result in a fresh kernel in a subprocess with a time
limit. An exercise scores when its check cell runs without error. A notebook that
cannot be read, crashes its kernel or runs past the limit scores zero with the
reason; the next submission is graded regardless.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from ..reporting import write_json
from .student import CHECK, SOLUTIONS


def check_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code" and CHECK.match(cell.source)]


def exercise_of(cell) -> str:
    return CHECK.match(cell.source)["exercise"].strip()


def prepare(submission: Path, solution: Path):
    """The submission with its check cells replaced by the solution's."""
    notebook = nbformat.read(submission, as_version=4)
    reference = check_cells(nbformat.read(solution, as_version=4))
    notebook.cells = [c for c in notebook.cells if not (c.cell_type == "code" and CHECK.match(c.source))]
    notebook.cells += [nbformat.v4.new_code_cell(c.source) for c in reference]
    return notebook


def execute(notebook_path: Path, result_path: Path, cell_timeout: int) -> None:
    """Run in the grading subprocess: execute the prepared notebook and record each check cell's outcome."""
    from nbclient import NotebookClient

    notebook = nbformat.read(notebook_path, as_version=4)
    NotebookClient(notebook, timeout=cell_timeout, kernel_name="python3", allow_errors=True).execute()
    outcomes = {}
    for cell in check_cells(notebook):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        outcomes[exercise_of(cell)] = f"{errors[0].ename}: {errors[0].evalue}".splitlines()[0] if errors else None
    write_json(result_path, outcomes)


def grade_one(submission: Path, solution: Path, timeout: int) -> dict:
    """Score one submission: {"student", exercise columns (1/0), "score", "max_score", "reason"}."""
    exercises = [exercise_of(c) for c in check_cells(nbformat.read(solution, as_version=4))]
    row = {"student": submission.stem, **{e: 0 for e in exercises}, "score": 0, "max_score": len(exercises)}
    try:
        prepared = prepare(submission, solution)
    except Exception as error:  # unreadable submission: zero, with the reason
        return {**row, "reason": f"cannot read notebook: {type(error).__name__}: {error}"}
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        notebook_path, result_path = Path(tmp) / "submission.ipynb", Path(tmp) / "result.json"
        nbformat.write(prepared, notebook_path)
        command = [sys.executable, "-m", "fireflow_edu.grading.grader", str(notebook_path), str(result_path),
                   str(timeout)]
        # its own session, so a timeout kills the kernel the subprocess started as well
        process = subprocess.Popen(command, cwd=submission.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return {**row, "reason": f"timed out after {timeout} s"}
        if process.returncode != 0 or not result_path.exists():
            last = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            return {**row, "reason": f"execution failed: {last[0]}"}
        outcomes = json.loads(result_path.read_text())
    failures = []
    for exercise in exercises:
        error = outcomes.get(exercise, "check did not run")
        row[exercise] = int(error is None)
        if error is not None:
            failures.append(f"{exercise}: {error}")
    row["score"] = sum(row[e] for e in exercises)
    row["reason"] = "; ".join(failures)
    return row


def grade_folder(folder: Path, assignment: str, out_csv: Path, timeout: int = 120,
                 solutions: Path = SOLUTIONS) -> list[dict]:
    """Grade every ``*.ipynb`` in ``folder`` against ``solutions/<assignment>.ipynb``; write ``out_csv``."""
    solution = Path(solutions) / f"{assignment}.ipynb"
    if not solution.exists():
        names = ", ".join(p.stem for p in sorted(Path(solutions).glob("*.ipynb")))
        raise FileNotFoundError(f"no assignment {assignment!r}; available: {names}")
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"submissions folder {folder} not found")
    submissions = sorted(Path(folder).glob("*.ipynb"))
    if not submissions:
        raise FileNotFoundError(f"no .ipynb submissions in {folder}")
    rows = [grade_one(path, solution, timeout) for path in submissions]
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


if __name__ == "__main__":
    execute(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
