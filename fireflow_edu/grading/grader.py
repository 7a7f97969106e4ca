"""Grade a folder of submitted assignment notebooks into a CSV: the kernel computes, the grader judges.

For each submission, alone:

1. a private temporary folder holds a copy of the notebook and nothing else; its kernel starts there, in a
   subprocess with a time limit and a memory limit, inside a sandbox (:mod:`fireflow_edu.grading.sandbox`):
   it sees that folder and the installed software only, not the other submissions nor the grader's other
   folders, can write nowhere else that outlives it, has no network, and every process it starts ends with
   it; a notebook that hangs or allocates without bound scores zero with the reason;
2. the student's cells run (their own ``# CHECK`` cells are dropped: those are self-checks for the student);
3. a probe cell (:mod:`fireflow_edu.grading.probe`) calls the student's functions on inputs drawn fresh
   for this submission and prints what they returned;
4. back in the grader's process, :mod:`fireflow_edu.grading.judge` computes the reference's answers on the
   same inputs and decides each exercise; a step whose code imports or looks up the package's own steps
   scores zero with that reason. Nothing the student's code does inside its kernel (patching the checks, the
   solver loop, the package) changes what the reference computes here.

Only the grader writes the CSV. Where no sandbox can be made (no ``bwrap``, or a machine that refuses it
namespaces) the grade says so once on stderr and in every row's reason, and the kernels run with the
grader's access to the machine. What the sandbox does not bound: the NFE count is taken inside the kernel
(a submission could forge it, though never a value), and the memory limit is per process, so a submission
that starts many processes can use more memory and CPU in all than one.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import numpy as np

from . import sandbox
from .exercises import assignment_exercises
from .judge import borrowed, draw, verdict
from .probe import MARKER
from .student import CHECK

MEMORY_ERRORS = ("MemoryError", "can't allocate memory", "std::bad_alloc")


def _probe_cell(request: dict) -> nbformat.NotebookNode:
    source = Path(__file__).with_name("probe.py").read_text()
    return nbformat.v4.new_code_cell(
        f"__fireflow_probe = {{}}\nexec({source!r}, __fireflow_probe)\n"
        f"__fireflow_probe['main'](globals(), {json.dumps(request)!r})")


def _run_alone(notebook: nbformat.NotebookNode, timeout: int, memory_gb: float,
               sandboxed: bool) -> tuple[object, str | None]:
    """The executed notebook, or None and why it did not finish."""
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        private = Path(tmp)
        (private / "work").mkdir()
        nbformat.write(notebook, private / "work" / "submission.ipynb")
        inside = sandbox.INSIDE if sandboxed else private
        command = [sys.executable, "-m", "fireflow_edu.grading.run_notebook", str(inside / "work" / "submission.ipynb"),
                   str(inside / "executed.ipynb"), str(timeout), str(int(memory_gb * 2**30))]
        if sandboxed:
            command = sandbox.wrap(command, private)
        # its own session, so a timeout kills the kernel the subprocess started as well
        process = subprocess.Popen(command, cwd=private / "work", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return None, f"timed out after {timeout} s"
        executed = private / "executed.ipynb"
        if process.returncode != 0 or not executed.exists():
            text = stderr.decode(errors="replace")
            if any(marker in text for marker in MEMORY_ERRORS + ("DeadKernelError",)):
                return None, f"the kernel died or ran out of memory (limit {memory_gb:g} GB)"
            last = text.strip().splitlines()[-1:] or ["no output"]
            return None, f"execution failed: {last[0]}"
        return nbformat.read(executed, as_version=4), None


def _probe_answers(executed) -> dict:
    for output in executed.cells[-1].get("outputs", []):
        if output.get("name") == "stdout":
            for line in output["text"].splitlines():
                if line.startswith(MARKER):
                    return json.loads(line[len(MARKER):])
    return {}


def _ran_out_of_memory(executed) -> bool:
    return any(output.get("output_type") == "error"
               and any(marker in f"{output.get('ename')}: {output.get('evalue')}" for marker in MEMORY_ERRORS)
               for cell in executed.cells if cell.cell_type == "code" for output in cell.get("outputs", []))


def grade_one(submission: Path, assignment: str, timeout: int, memory_gb: float = 4.0, seed: int | None = None,
              no_sandbox: str | None = None) -> dict:
    """Score one submission: {"student", exercise columns (1/0), "score", "max_score", "reason"}. Its kernel
    runs in the sandbox (:mod:`fireflow_edu.grading.sandbox`) unless ``no_sandbox`` says why none can be made
    here: then it runs with this process's access to the machine, and the reason says so."""
    row = _grade(submission, assignment, timeout, memory_gb, seed, no_sandbox is None)
    if no_sandbox is not None:
        row["reason"] = "; ".join(filter(None, [row["reason"], f"graded without a sandbox: {no_sandbox}"]))
    return row


def _grade(submission: Path, assignment: str, timeout: int, memory_gb: float, seed: int | None,
           sandboxed: bool) -> dict:
    exercises = assignment_exercises(assignment)
    row = {"student": submission.stem, **{e.label: 0 for e in exercises}, "score": 0, "max_score": len(exercises)}
    try:
        notebook = nbformat.read(submission, as_version=4)
    except Exception as error:  # unreadable submission: zero, with the reason
        return {**row, "reason": f"cannot read notebook: {type(error).__name__}: {error}"}
    rng = np.random.default_rng(seed)  # fresh secret inputs for every submission
    request = {"exercises": [draw(exercise, rng) for exercise in exercises]}
    code = [c for c in notebook.cells if c.cell_type == "code"]
    notebook.cells = [c for c in notebook.cells if not (c.cell_type == "code" and CHECK.match(c.source))]
    notebook.cells.append(_probe_cell(request))
    executed, failure = _run_alone(notebook, timeout, memory_gb, sandboxed)
    if executed is not None and _ran_out_of_memory(executed):
        failure = f"a cell ran out of memory (limit {memory_gb:g} GB)"
    if failure is not None:
        return {**row, "reason": failure}
    answers = _probe_answers(executed)
    sources = [c.source for c in code]
    failures = []
    for exercise, item in zip(exercises, request["exercises"]):
        why = verdict(exercise, item, answers.get(exercise.label))
        if why is None:
            why = borrowed(exercise, sources)
        row[exercise.label] = int(why is None)
        if why is not None:
            failures.append(f"{exercise.label}: {why}")
    row["score"] = sum(row[e.label] for e in exercises)
    row["reason"] = "; ".join(failures)
    return row


def grades_columns(assignment: str) -> list[str]:
    """The header of the grades CSV that :func:`grade_folder` writes for ``assignment`` (a row is :func:`grade_one`'s)."""
    return ["student", *(e.label for e in assignment_exercises(assignment)), "score", "max_score", "reason"]


def grade_folder(folder: Path, assignment: str, out_csv: Path, timeout: int = 120, memory_gb: float = 4.0,
                 seed: int | None = None, jobs: int = 1) -> list[dict]:
    """Grade every ``*.ipynb`` in ``folder`` as ``assignment``; write ``out_csv``. ``seed`` fixes the secret
    inputs (for reproducing a grade); by default each submission gets fresh ones. ``jobs`` submissions run at
    once (each in its own kernel, each under ``memory_gb``); rows keep the submissions' sorted order."""
    assignment_exercises(assignment)
    if jobs < 1:
        raise ValueError(f"jobs must be 1 or more, got {jobs}")
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"submissions folder {folder} not found")
    submissions = sorted(Path(folder).glob("*.ipynb"))
    if not submissions:
        raise FileNotFoundError(f"no .ipynb submissions in {folder}")
    no_sandbox = sandbox.problem()
    if no_sandbox is not None:
        print(f"grade: no sandbox can be made here: {no_sandbox}. Every submission runs with this user's access "
              "to the machine, and each row's reason says so.", file=sys.stderr)
    with ThreadPoolExecutor(jobs) as pool:  # the work is in the kernels' processes; threads only wait on them
        rows = list(pool.map(lambda i: grade_one(submissions[i], assignment, timeout, memory_gb,
                                                 None if seed is None else seed + i, no_sandbox),
                             range(len(submissions))))
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=grades_columns(assignment))
        writer.writeheader()
        writer.writerows(rows)
    return rows

