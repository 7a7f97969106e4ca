"""Teacher subcommands: ``assignments`` (build student copies) and ``grade`` (a folder into a CSV)."""

from __future__ import annotations

from pathlib import Path

from .grader import grade_folder
from .student import SOLUTIONS, STUDENT, build


def run_assignments(args) -> None:
    stale = build(check=args.check, solutions=args.solutions, student=args.student)
    if args.check and stale:
        raise ValueError("assignment notebooks out of date: " + ", ".join(str(p) for p in stale)
                         + "; run `python -m fireflow_edu assignments`")
    print("assignment notebooks up to date" if args.check else
          "".join(f"wrote {path}\n" for path in stale) + f"{len(stale)} notebook(s) updated")


def run_grade(args) -> None:
    rows = grade_folder(args.submissions, args.assignment, args.out, timeout=args.timeout, solutions=args.solutions)
    for row in rows:
        print(f"{row['student']:<24} {row['score']}/{row['max_score']}  {row['reason']}")
    print(f"wrote {args.out}")


def _assignments_command(assignments) -> None:
    assignments.description = ("Give the solution notebooks the nbgrader cell metadata their markers imply and "
                               "strip the marked solutions into the student copies (both shipped in the package; "
                               "--student DIR writes the student copies elsewhere, e.g. for a class).")
    assignments.add_argument("--check", action="store_true", help="only verify the student copies are up to date")
    assignments.add_argument("--solutions", type=Path, default=SOLUTIONS, help="solution notebooks folder")
    assignments.add_argument("--student", type=Path, default=STUDENT, help="student notebooks folder")
    assignments.set_defaults(run=run_assignments)


def _grade_command(grade) -> None:
    grade.description = ("Executes each submission in a subprocess with a time limit, with the solution's check "
                         "cells appended; a broken or hanging notebook scores zero with the reason and never stops "
                         "the run.")
    grade.add_argument("submissions", type=Path, help="folder of submitted .ipynb files (one per student)")
    grade.add_argument("--assignment", required=True,
                       help="solution notebook name, e.g. a_euler_step, b_midpoint_rf_solver, c_fireflow_step")
    grade.add_argument("--out", type=Path, default=Path("grades.csv"), help="CSV to write (default grades.csv)")
    grade.add_argument("--timeout", type=int, default=120, help="seconds per notebook (default 120)")
    grade.add_argument("--solutions", type=Path, default=SOLUTIONS, help="solution notebooks folder")
    grade.set_defaults(run=run_grade)


def configure(name: str, parser) -> None:
    """Arguments of ``assignments`` or ``grade``."""
    {"assignments": _assignments_command, "grade": _grade_command}[name](parser)
