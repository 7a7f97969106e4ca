"""Teacher subcommands: ``assignments`` (build student copies) and ``grade`` (a folder into a CSV)."""

from __future__ import annotations

import os
from pathlib import Path

from .student import STUDENT


def run_assignments(args) -> None:
    from .student import build

    stale = build(check=args.check, solutions=args.solutions, student=args.student)
    if args.check and stale:
        raise ValueError("assignment notebooks out of date: " + ", ".join(str(p) for p in stale)
                         + "; run `python -m fireflow_edu assignments`")
    print("assignment notebooks up to date" if args.check else
          "".join(f"wrote {path}\n" for path in stale) + f"{len(stale)} notebook(s) updated")


def run_grade(args) -> None:
    from .grader import grade_folder

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
    assignments.add_argument("--student", type=Path, default=STUDENT, help="student notebooks folder")
    assignments.set_defaults(run=run_assignments)


def _grade_command(grade) -> None:
    grade.description = ("Runs each submission alone (a private folder, a time and a memory limit), calls its "
                         "functions on inputs drawn fresh for it and judges the answers against the package's "
                         "reference in this process; a broken, hanging or memory-hungry notebook scores zero with "
                         "the reason and never stops the run.")
    grade.add_argument("submissions", type=Path, help="folder of submitted .ipynb files (one per student)")
    grade.add_argument("--assignment", required=True,
                       help="assignment name: a_euler_step, b_midpoint_rf_solver or c_fireflow_step")
    grade.add_argument("--out", type=Path, default=Path("grades.csv"), help="CSV to write (default grades.csv)")
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
