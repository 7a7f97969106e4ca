"""Teacher subcommands: ``assignments`` (build student copies) and ``grade`` (a folder into a CSV)."""

from __future__ import annotations

import os
from pathlib import Path

from .student import STUDENT


def run_assignments(args) -> None:
    from .student import build

    stale = build(check=args.check, solutions=args.solutions, student=args.student, overwrite=args.overwrite)
    if args.check and stale:
        raise ValueError("assignment notebooks out of date: " + ", ".join(str(p) for p in stale)
                         + "; run `python -m fireflow_edu assignments`")
    print("assignment notebooks up to date" if args.check else
          "".join(f"wrote {path}\n" for path in stale) + f"{len(stale)} notebook(s) updated")


def _check_grades_out(out: Path, submissions: Path, assignment: str) -> None:
    """Refuse, before any grading, an ``--out`` whose CSV would replace what a student or a teacher wrote: a path
    inside the submissions folder, a folder, or an existing file that is not a grades CSV (its first line not the
    header ``grade`` writes for one of the assignments)."""
    import csv

    from .exercises import ASSIGNMENTS
    from .grader import grades_columns

    expected = grades_columns(assignment)
    if out.resolve() == submissions.resolve() or submissions.resolve() in out.resolve().parents:
        raise ValueError(f"--out {out} is inside the submissions folder {submissions}; write the grades elsewhere")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a CSV file")
    if out.exists():
        try:
            with out.open(newline="") as handle:
                header = next(csv.reader(handle), None)
        except (UnicodeDecodeError, csv.Error):
            header = None
        if header not in [grades_columns(name) for name in ASSIGNMENTS]:
            raise ValueError(f"--out {out} exists and is not a grades CSV (its first line is not a header grade "
                             f"writes, such as {','.join(expected)}); give another path")


def run_grade(args) -> None:
    from .grader import grade_folder

    _check_grades_out(args.out, args.submissions, args.assignment)
    rows = grade_folder(args.submissions, args.assignment, args.out, timeout=args.timeout, memory_gb=args.memory_gb,
                        seed=args.seed, jobs=args.jobs)
    for row in rows:
        print(f"{row['student']:<24} {row['score']}/{row['max_score']}  {row['reason']}")
    print(f"wrote {args.out}")


def _assignments_command(assignments) -> None:
    assignments.description = ("Give the solution notebooks the nbgrader cell metadata their markers imply and "
                               "strip the marked solutions into the student copies (the copies ship in the package, "
                               "the solutions stay in the repository; --student DIR writes the copies elsewhere, "
                               "e.g. for a class).")
    assignments.add_argument("--check", action="store_true", help="only verify the student copies are up to date")
    assignments.add_argument("--solutions", type=Path, default=None,
                             help="solution notebooks folder (default: the repository's notebooks/assignments)")
    assignments.add_argument("--student", type=Path, default=STUDENT,
                             help="student notebooks folder (default: the package's copies, always regenerated)")
    assignments.add_argument("--overwrite", action="store_true",
                             help="allow --student DIR to hold solution notebooks or notebooks the copies replace")
    assignments.set_defaults(run=run_assignments)


def _grade_command(grade) -> None:
    grade.description = ("Runs each submission alone (a private folder, a time and a memory limit), calls its "
                         "functions on inputs drawn fresh for it and judges the answers against the package's "
                         "reference in this process; a broken, hanging or memory-hungry notebook scores zero with "
                         "the reason and never stops the run.")
    grade.add_argument("submissions", type=Path, help="folder of submitted .ipynb files (one per student)")
    grade.add_argument("--assignment", required=True,
                       help="assignment name: a_euler_step, b_midpoint_rf_solver, c_fireflow_step or "
                            "d_inversion_editing")
    grade.add_argument("--out", type=Path, default=Path("grades.csv"),
                       help="CSV to write (default grades.csv); refused inside the submissions folder or onto an "
                            "existing file that is not a grades CSV")
    grade.add_argument("--timeout", type=int, default=120, help="seconds per notebook (default 120)")
    grade.add_argument("--memory-gb", type=float, default=4.0, help="address-space limit per notebook (default 4)")
    grade.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                       help="submissions graded at once, each in its own kernel under --memory-gb (default: the "
                            "CPU count, at most 4)")
    grade.add_argument("--seed", type=int, default=None,
                       help="fix the secret inputs, to reproduce a grade (default: fresh for every submission)")
    grade.set_defaults(run=run_grade)


def configure(name: str, parser) -> None:
    """Arguments of ``assignments`` or ``grade``."""
    {"assignments": _assignments_command, "grade": _grade_command}[name](parser)
