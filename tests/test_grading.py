import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

import fireflow_edu
from fireflow_edu.cli import main
from fireflow_edu.grading import (check_euler_step, check_fireflow_step, check_fit_order, check_midpoint_step,
                                  check_rf_solver_step, check_round_trip)
from fireflow_edu.grading.student import BEGIN, SOLUTIONS, STUDENT, build, strip_solutions
from fireflow_edu.schedules import uniform
from fireflow_edu.solvers import SOLVERS, integrate


# --- typical wrong answers -------------------------------------------------------------------------

def euler_abs_h(v, x, t, h, cache):
    return x + abs(h) * v(x, t)


def euler_end_time(v, x, t, h, cache):
    return x + h * v(x, t + h)


def euler_twice(v, x, t, h, cache):
    v(x, t)
    return x + h * v(x, t)


def midpoint_at_start_time(v, x, t, h, cache):
    return x + h * v(x + h / 2 * v(x, t), t)


def midpoint_full_step_location(v, x, t, h, cache):
    return x + h * v(x + h * v(x, t), t + h / 2)


def rf_solver_wrong_derivative(v, x, t, h, cache):
    v0 = v(x, t)
    vm = v(x + h / 2 * v0, t + h / 2)
    return x + h * v0 + h**2 / 2 * (vm - v0) / h


def fireflow_caches_start_velocity(v, x, t, h, cache):
    v_start = cache["v"] if "v" in cache else v(x, t)
    cache["v"] = v_start
    return x + h * v(x + h / 2 * v_start, t + h / 2)


def fireflow_abs_h(v, x, t, h, cache):
    return SOLVERS["fireflow"].step(v, x, t, abs(h), cache)


def fireflow_evaluates_every_start(v, x, t, h, cache):
    v(x, t)
    return SOLVERS["fireflow"].step(v, x, t, h, cache)


def round_trip_same_grid(step, velocity, x, n):
    first = integrate(velocity, x, uniform(n), step)
    second = integrate(velocity, first.x, uniform(n), step)
    return second.x, first.nfe + second.nfe


def round_trip_inversion_only(step, velocity, x, n):
    result = integrate(velocity, x, uniform(n, 0.0, 1.0), step)
    return result.x, result.nfe


def round_trip_reference(step, velocity, x, n):
    inverted = integrate(velocity, x, uniform(n, 0.0, 1.0), step)
    back = integrate(velocity, inverted.x, uniform(n), step)
    return back.x, inverted.nfe + back.nfe


CASES = [
    (check_euler_step, SOLVERS["euler"].step, [
        (SOLVERS["midpoint"].step, "2 velocity evaluations per step"),
        (euler_abs_h, "signed step h"),
        (euler_end_time, "at the start of the step"),
        (euler_twice, "2 velocity evaluations"),
    ]),
    (check_midpoint_step, SOLVERS["midpoint"].step, [
        (SOLVERS["euler"].step, "behaves like Euler"),
        (midpoint_at_start_time, "time t + h/2"),
        (midpoint_full_step_location, "position x + h/2"),
    ]),
    (check_rf_solver_step, SOLVERS["rf_solver"].step, [
        (rf_solver_wrong_derivative, "(vm - v0) / (h/2)"),
        (SOLVERS["euler"].step, "2 NFE per step"),
    ]),
    (check_fireflow_step, SOLVERS["fireflow"].step, [
        (SOLVERS["midpoint"].step, "used 2 NFE per step: reuse the midpoint velocity"),
        (fireflow_caches_start_velocity, "cache the velocity at the midpoint"),
        (fireflow_abs_h, "signed step h"),
        (fireflow_evaluates_every_start, "used 2 NFE per step"),
    ]),
    (check_round_trip, round_trip_reference, [
        (round_trip_same_grid, "directions"),
        (round_trip_inversion_only, "18 NFE"),
    ]),
    (check_fit_order, lambda d, e: np.polyfit(np.log(d), np.log(e), 1)[0], [
        (lambda d, e: np.polyfit(d, e, 1)[0], "log-log space"),
        (lambda d, e: -np.polyfit(np.log(d), np.log(e), 1)[0], "you returned -1.0000"),
    ]),
]


@pytest.mark.parametrize("check,reference,wrong", CASES, ids=[c[0].__name__ for c in CASES])
def test_checker_passes_reference_and_names_typical_mistakes(check, reference, wrong, capsys):
    check(reference)
    assert capsys.readouterr().out.startswith("PASS Exercise")
    assert len(wrong) >= 2
    for answer, hint in wrong:
        with pytest.raises(AssertionError, match=hint.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
            check(answer)


def test_blank_exercise_surfaces_its_label():
    def blank(v, x, t, h, cache):
        raise NotImplementedError("Exercise A.1: return x + h * v(x, t)")

    with pytest.raises(NotImplementedError, match="Exercise A.1"):
        check_euler_step(blank)


# --- student copies ---------------------------------------------------------------------------------

def test_student_copies_are_up_to_date():
    assert build(check=True) == [], "run `python -m fireflow_edu assignments`"


def test_student_copies_hold_no_solution_code():
    for solution_path in sorted(SOLUTIONS.glob("*.ipynb")):
        student = nbformat.read(STUDENT / solution_path.name, as_version=4)
        solution = nbformat.read(solution_path, as_version=4)
        text = "\n".join(c.source for c in student.cells)
        assert "SOLUTION" not in text
        hidden = [line.strip() for c in solution.cells if c.cell_type == "code"
                  for block in c.source.split("### BEGIN SOLUTION")[1:]
                  for line in block.split("### END SOLUTION")[0].splitlines()[1:] if line.strip()]
        assert hidden and not any(line in text for line in hidden), solution_path.name
        blanks = text.count("raise NotImplementedError(")
        markers = sum(c.source.count("### BEGIN SOLUTION") for c in solution.cells)
        assert blanks == markers >= 2


def test_strip_solutions_keeps_indentation_and_rejects_bad_markers():
    source = "def f(x):\n    ### BEGIN SOLUTION Exercise Z.1: double it\n    return 2 * x\n    ### END SOLUTION\n"
    assert strip_solutions(source) == "def f(x):\n    raise NotImplementedError('Exercise Z.1: double it')"
    with pytest.raises(ValueError, match="without END"):
        strip_solutions("### BEGIN SOLUTION Exercise Z.2: x\nx = 1")
    assert BEGIN.match("  ### BEGIN SOLUTION Exercise Q.3: y")["label"] == "Exercise Q.3: y"


def test_every_solution_exercise_has_a_check_cell():
    for path in sorted(SOLUTIONS.glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        labels = {BEGIN.match(line)["label"].split(":")[0] for c in cells for line in c.source.splitlines()
                  if BEGIN.match(line)}
        checked = {c.source.splitlines()[0].removeprefix("# CHECK ").strip() for c in cells
                   if c.cell_type == "code" and c.source.startswith("# CHECK")}
        assert labels == checked, path.name


# --- grading a folder -------------------------------------------------------------------------------

@pytest.mark.slow
def test_grade_folder_scores_good_blank_partial_and_broken(tmp_path, capsys):
    folder = tmp_path / "submissions"
    folder.mkdir()
    nbformat.write(nbformat.read(SOLUTIONS / "a_euler_step.ipynb", as_version=4), folder / "ada.ipynb")
    nbformat.write(nbformat.read(STUDENT / "a_euler_step.ipynb", as_version=4), folder / "bob.ipynb")
    partial = _answered("a_euler_step", {"euler_step": "def euler_step(v, x, t, h, cache):\n    return x + h * v(x, t)"},
                        solved=False)
    for cell in partial.cells:
        if cell.source.startswith("# CHECK Exercise A.1"):
            cell.source = "# CHECK Exercise A.2\nprint('a student who edits a check gains nothing')"
    nbformat.write(partial, folder / "cy.ipynb")
    (folder / "eve.ipynb").write_text("{ this is not a notebook")

    out = tmp_path / "grades.csv"
    assert main(["grade", str(folder), "--assignment", "a_euler_step", "--out", str(out)]) == 0
    rows = {row["student"]: row for row in csv.DictReader(out.open())}
    assert (rows["ada"]["score"], rows["ada"]["max_score"]) == ("2", "2") and rows["ada"]["reason"] == _no_sandbox()
    assert rows["bob"]["score"] == "0" and "NotImplementedError: Exercise A.1" in rows["bob"]["reason"]
    assert rows["cy"]["score"] == "1" and rows["cy"]["Exercise A.1"] == "1" and rows["cy"]["Exercise A.2"] == "0"
    assert rows["eve"]["score"] == "0" and "cannot read notebook" in rows["eve"]["reason"]
    assert "ada" in capsys.readouterr().out


def _no_sandbox() -> str:
    """What ``grade`` adds to a full score's reason here: nothing where a sandbox can be made."""
    from fireflow_edu.grading import sandbox

    why = sandbox.problem()
    return "" if why is None else f"graded without a sandbox: {why}"


def _answered(assignment: str, answers: dict[str, str], extra: tuple[str, ...] = (),
              solved: bool = True) -> nbformat.NotebookNode:
    """The student copy with each blank function replaced by ``answers[name]`` (the others from the solution, or
    left blank unless ``solved``), and ``extra`` cells inserted after the seed cell."""
    solution = nbformat.read(SOLUTIONS / f"{assignment}.ipynb", as_version=4)
    notebook = nbformat.read(STUDENT / f"{assignment}.ipynb", as_version=4)
    for mine, reference in zip(notebook.cells, solution.cells):
        if "raise NotImplementedError(" in mine.source:
            name = next((n for n in answers if f"def {n}(" in mine.source), None)
            if name or solved:
                mine.source = answers[name] if name else strip_markers(reference.source)
    seed = next(i for i, c in enumerate(notebook.cells) if c.source.startswith("# Seed cell"))
    notebook.cells[seed + 1:seed + 1] = [nbformat.v4.new_code_cell(source) for source in extra]
    return notebook


def strip_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if "### BEGIN SOLUTION" not in line
                     and "### END SOLUTION" not in line)


WRONG_EULER = "def euler_step(v, x, t, h, cache):\n    return x - h * v(x, t)"
ADVERSARIES = {
    # a wrong step, with the self-check machinery patched so that the in-kernel check prints PASS
    "patched_require": (WRONG_EULER, "import fireflow_edu.grading.checks as c\nc._require = lambda *a, **k: None"),
    "patched_check": (WRONG_EULER, "import fireflow_edu.grading as g\n"
                                   "g.check_euler_step = lambda step, *a, **k: print('PASS Exercise A.1')"),
    "patched_loop": (WRONG_EULER, "import fireflow_edu.solvers as s\n"
                                  "s.integrate = lambda v, x, grid, method, **k: s.SolveResult(x, 1)"),
    # a right answer that is not the student's
    "borrowed_step": ("from fireflow_edu.solvers import euler_step", ""),
    "looked_up_step": ("import fireflow_edu.solvers as s\n\n\ndef euler_step(v, x, t, h, cache):\n"
                       "    return s.SOLVERS['euler'].step(v, x, t, h, cache)", ""),
}


# copies a classmate's right answer at grade time: it walks the folders a notebook could be in (the system's
# temporary folder, where the submissions and the grader's private folders sit, its home, the folders named on
# the machine's command lines), tries each `euler_step` it finds with the self-check in a subprocess, and
# imports the first that passes over its own wrong one (a star import: nothing the borrowing check flags)
COPYCAT = """import json, os, pathlib, subprocess, sys
roots = {'/tmp', os.path.expanduser('~'), '..'}
for cmdline in pathlib.Path('/proc').glob('*/cmdline'):
    try:
        roots.update(str(pathlib.Path(a).parent.parent) for a in cmdline.read_text().split(chr(0)) if a.endswith('.ipynb'))
    except OSError:
        pass
def copy_from(path):
    try:
        cells = json.loads(path.read_text()).get('cells', [])
    except (OSError, ValueError):
        return False
    for cell in cells:
        source = ''.join(cell.get('source', ''))
        if 'def euler_step(' in source and 'NotImplementedError' not in source:
            pathlib.Path('classmate.py').write_text(source)
            trial = subprocess.run([sys.executable, '-c', 'from classmate import *; '
                                    'from fireflow_edu.grading import check_euler_step; check_euler_step(euler_step)'],
                                   capture_output=True)
            if trial.returncode == 0:
                return True
    return False
def find():
    own = pathlib.Path('submission.ipynb').resolve()
    for root in sorted(roots):
        for folder, _, files in os.walk(root):
            for name in files:
                if name.endswith('.ipynb') and pathlib.Path(folder, name).resolve() != own:
                    if copy_from(pathlib.Path(folder, name)):
                        return True
    return False
if find():
    from classmate import *
"""
LINGERER = ("import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {token!r}],"
            " start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)")
CONNECTOR = ("import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3).sendall(b'out')\n"
             "except OSError as error:\n    print('no connection:', error)")
WRITER = ("import os, pathlib, sys, tempfile, fireflow_edu\n"
          "for folder in ('..', '../..', '/', '/tmp', os.path.expanduser('~'), tempfile.gettempdir(), sys.prefix,"
          " os.path.dirname(fireflow_edu.__file__), os.path.dirname(os.path.dirname(fireflow_edu.__file__))):\n"
          "    try:\n        (pathlib.Path(folder) / {name!r}).write_text('escaped')\n    except OSError:\n        pass")


def _processes_naming(token: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if token in cmdline.read_text():
                found.append(int(cmdline.parent.name))
        except OSError:  # it ended while we looked
            pass
    return found


@pytest.mark.slow
def test_adversarial_submissions_score_what_their_work_earns(tmp_path, tmp_path_factory, monkeypatch):
    from fireflow_edu.grading import sandbox

    if sandbox.problem() is not None:
        pytest.skip(f"no sandbox here ({sandbox.problem()}); `python3 dev.py test` installs bubblewrap as root")
    # should the sandbox leak, the vandal below rewrites every notebook two folders up from its private folder:
    # keep the private folders in a temporary folder of this test's own, not among the machine's /tmp/*/*.ipynb
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("private_folders")))
    folder = tmp_path / "submissions"
    folder.mkdir()
    right = "def euler_step(v, x, t, h, cache):\n    return x + h * v(x, t)"
    nbformat.write(_answered("a_euler_step", {"euler_step": right}), folder / "honest.ipynb")
    nbformat.write(_answered("a_euler_step", {"euler_step": WRONG_EULER}), folder / "honest_slip.ipynb")
    for name, (answer, patch) in ADVERSARIES.items():
        nbformat.write(_answered("a_euler_step", {"euler_step": answer}, (patch,) if patch else ()),
                       folder / f"{name}.ipynb")
    # sorts first: it tries to rewrite its neighbours before they are graded, and to write the CSV
    vandal = ("import pathlib\n"
              "for p in [*pathlib.Path('.').glob('*.ipynb'), *pathlib.Path('..').glob('*.ipynb'), "
              "*pathlib.Path('../..').glob('*/*.ipynb')]:\n    p.write_text('{}')\n"
              "pathlib.Path('grades.csv').write_text('student,score\\nvandal,99\\n')")
    nbformat.write(_answered("a_euler_step", {}, (vandal,)), folder / "a_vandal.ipynb")
    hungry = "blocks = []\nwhile True:\n    blocks.append(bytearray(10**8))"
    nbformat.write(_answered("a_euler_step", {}, (hungry,)), folder / "hungry.ipynb")
    copycat = _answered("a_euler_step", {"euler_step": WRONG_EULER})
    copycat.cells.append(nbformat.v4.new_code_cell(COPYCAT))  # after its own answer, which it replaces
    nbformat.write(copycat, folder / "copycat.ipynb")
    token, escaped = f"fireflow-lingerer-{tmp_path.name}", f"fireflow-escaped-{tmp_path.name}"
    nbformat.write(_answered("a_euler_step", {}, (LINGERER.format(token=token),)), folder / "lingerer.ipynb")
    nbformat.write(_answered("a_euler_step", {}, (WRITER.format(name=escaped),)), folder / "writer.ipynb")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    nbformat.write(_answered("a_euler_step", {}, (CONNECTOR.format(port=port),)), folder / "connector.ipynb")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    outside = {tmp_path, Path(tempfile.gettempdir()), Path(tempfile.gettempdir()).parent, Path("/tmp"), Path.home(), Path(sys.prefix),
               Path(fireflow_edu.__file__).parent, Path(fireflow_edu.__file__).parent.parent}

    out = tmp_path / "grades.csv"
    try:
        assert main(["grade", str(folder), "--assignment", "a_euler_step", "--out", str(out), "--memory-gb", "3"]) == 0
        lingering = _processes_naming(token)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # no connection waits to be accepted
            listener.accept()
        written = [place / escaped for place in outside if (place / escaped).exists()]
    finally:
        listener.close()
        for pid in _processes_naming(token):
            os.kill(pid, signal.SIGKILL)
        for place in outside:
            (place / escaped).unlink(missing_ok=True)
    assert lingering == [] and written == []
    rows = {row["student"]: row for row in csv.DictReader(out.open())}
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nobody reached the others
    for name in ("honest", "a_vandal", "lingerer", "writer", "connector"):  # their own work is right
        assert (rows[name]["score"], rows[name]["reason"]) == ("2", ""), rows[name]
    for name in ("honest_slip", "copycat", "patched_require", "patched_check", "patched_loop"):
        assert (rows[name]["Exercise A.1"], rows[name]["Exercise A.2"]) == ("0", "1"), rows[name]
        assert "differs from the euler update" in rows[name]["reason"]
    assert "package's own function" in rows["borrowed_step"]["reason"] and rows["borrowed_step"]["score"] == "1"
    assert "borrows the package's steps" in rows["looked_up_step"]["reason"]
    assert rows["looked_up_step"]["Exercise A.1"] == "0"
    assert rows["hungry"]["score"] == "0" and "out of memory (limit 3 GB)" in rows["hungry"]["reason"]
    assert set(rows) == {p.stem for p in folder.glob("*.ipynb")}  # the CSV is the grader's alone


def test_the_sandbox_shows_the_package_and_hides_the_rest_of_the_repository(tmp_path):
    from fireflow_edu.grading import sandbox

    if sandbox.problem() is not None:
        pytest.skip(f"no sandbox here ({sandbox.problem()}); `python3 dev.py test` installs bubblewrap as root")
    package = Path(fireflow_edu.__file__).resolve().parent
    paths = {"package": package, "weights": package / "mini" / "pretrained", "solutions": SOLUTIONS.resolve(),
             "tests": Path(__file__).resolve().parent, "private folder": tmp_path, "inside": sandbox.INSIDE / "work"}
    look = ("import json, os, sys\nprint(json.dumps({'tmp': os.listdir('/tmp'), **{p: [os.path.exists(p), "
            "os.access(p, os.W_OK)] for p in sys.argv[1:]}}))")
    (tmp_path / "work").mkdir()
    run = subprocess.run(sandbox.wrap([sys.executable, "-c", look, *map(str, paths.values())], tmp_path),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout)
    # the package and the interpreter are bound at their own paths: in a clone under /tmp their top folder shows there
    bound = {p.relative_to("/tmp").parts[0] for p in (package, Path(sys.prefix).resolve()) if p.is_relative_to("/tmp")}
    assert sorted(seen.pop("tmp")) == sorted(bound)
    assert {name: seen[str(path)] for name, path in paths.items()} == {
        "package": [True, False], "weights": [True, False], "solutions": [False, False], "tests": [False, False],
        "private folder": [False, False], "inside": [True, True]}


@pytest.mark.parametrize("bwrap,why", [("fireflow-no-bwrap", "fireflow-no-bwrap is not installed"),
                                       ("false", "false failed: exit status 1")])
def test_without_a_sandbox_grade_says_so_once_and_in_every_row(bwrap, why, tmp_path, monkeypatch, capsys):
    from fireflow_edu.grading import sandbox

    monkeypatch.setattr(sandbox, "BWRAP", bwrap)
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name in ("ann", "ben"):
        (folder / f"{name}.ipynb").write_text("{ not a notebook")
    assert main(["grade", str(folder), "--assignment", "a_euler_step", "--out", str(tmp_path / "grades.csv")]) == 0
    assert capsys.readouterr().err.count(f"grade: no sandbox can be made here: {why}") == 1
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    assert len(rows) == 2 and all("cannot read notebook" in row["reason"]
                                  and f"; graded without a sandbox: {why}" in row["reason"] for row in rows)


def test_each_submission_gets_fresh_inputs_and_a_seed_reproduces_them():
    from fireflow_edu.grading.exercises import ASSIGNMENTS
    from fireflow_edu.grading.judge import draw

    exercise = ASSIGNMENTS["a_euler_step"][0]
    first, second = (draw(exercise, np.random.default_rng(seed)) for seed in (1, 2))
    assert first["field"] != second["field"] and first == draw(exercise, np.random.default_rng(1))
    assert any(g[-1] > g[0] for g in first["grids"]) and any(g[-1] < g[0] for g in first["grids"])


@pytest.mark.parametrize("assignment", ["b_midpoint_rf_solver", "c_fireflow_step"])
def test_typical_mistakes_score_zero_on_the_grader(assignment, tmp_path):
    from fireflow_edu.grading.exercises import ASSIGNMENTS
    from fireflow_edu.grading.judge import draw, verdict
    from fireflow_edu.grading.probe import PROBES

    wrong = {"midpoint_step": midpoint_at_start_time, "rf_solver_step": rf_solver_wrong_derivative,
             "fireflow_step": fireflow_caches_start_velocity, "round_trip": round_trip_same_grid}
    right = {"midpoint_step": SOLVERS["midpoint"].step, "rf_solver_step": SOLVERS["rf_solver"].step,
             "fireflow_step": SOLVERS["fireflow"].step, "round_trip": round_trip_reference}
    rng = np.random.default_rng(0)
    for exercise in ASSIGNMENTS[assignment]:
        item = draw(exercise, rng)
        for function, passes in ((right[exercise.function], True), (wrong[exercise.function], False)):
            answer = {"module": "__main__", **PROBES[exercise.kind](function, item)}
            assert (verdict(exercise, item, answer) is None) == passes, (exercise, function)


def test_a_step_that_evaluates_twice_scores_zero_with_the_nfe_named():
    from fireflow_edu.grading.exercises import ASSIGNMENTS
    from fireflow_edu.grading.judge import draw, verdict
    from fireflow_edu.grading.probe import probe_step

    exercise = ASSIGNMENTS["a_euler_step"][0]
    item = draw(exercise, np.random.default_rng(3))
    why = verdict(exercise, item, {"module": "__main__", **probe_step(euler_twice, item)})
    assert "evaluates the velocity 16 times over a pass of 8 steps where euler needs 8" in why
    why = verdict(exercise, item, {"module": "__main__", **probe_step(euler_abs_h, item)})
    assert "right when inverting (t: 0 -> 1) but not when sampling (t: 1 -> 0)" in why


def test_a_hanging_notebook_scores_zero_and_the_run_goes_on(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    hanging = nbformat.read(SOLUTIONS / "a_euler_step.ipynb", as_version=4)
    hanging.cells.insert(0, nbformat.v4.new_code_cell("while True:\n    pass"))
    nbformat.write(hanging, folder / "dee.ipynb")
    out = tmp_path / "grades.csv"
    assert main(["grade", str(folder), "--assignment", "a_euler_step", "--out", str(out), "--timeout", "3"]) == 0
    row = next(csv.DictReader(out.open()))
    assert row["score"] == "0" and "timed out after 3 s" in row["reason"]


def test_the_grading_subprocess_runs_a_notebook_without_importing_torch(tmp_path):
    """Each submission's subprocess only drives its kernel; torch (seconds per submission) is the kernel's and
    the judge's, in the grader's own process."""
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")]), tmp_path / "in.ipynb")
    code = ("import sys\nfrom pathlib import Path\nfrom fireflow_edu.grading.run_notebook import execute\n"
            f"execute(Path({str(tmp_path / 'in.ipynb')!r}), Path({str(tmp_path / 'out.ipynb')!r}), 60, 4 * 2**30)\n"
            "print(sorted(m for m in ('torch', 'numpy', 'fireflow_edu.grading.judge') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "42\n"


def test_grade_rejects_unknown_assignment(tmp_path, capsys):
    assert main(["grade", str(tmp_path), "--assignment", "z_nothing"]) == 2
    assert "available: a_euler_step" in capsys.readouterr().err


def test_grade_names_a_missing_submissions_folder(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "submissions"), "--assignment", "a_euler_step"]) == 2
    error = capsys.readouterr().err
    assert "submissions folder" in error and "not found" in error


def test_the_package_holds_no_solution():
    from fireflow_edu.grading.exercises import ASSIGNMENTS

    package = Path(fireflow_edu.__file__).parent
    hidden = _solution_lines()
    for path in package.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".ipynb", ".json", ".md", ".txt"):
            text = path.read_text(errors="replace")
            assert "### BEGIN SOLUTION" not in text or path.name == "student.py", path
            assert not any(line in text for line in hidden if path.suffix == ".ipynb"), path
    assert sorted(p.stem for p in STUDENT.glob("*.ipynb")) == sorted(ASSIGNMENTS)
    assert not (package / "grading" / "assignments" / "solutions").exists()


def _solution_lines() -> list[str]:
    """Every line of code between solution markers in the repository's solution notebooks."""
    return [line.strip() for path in sorted(SOLUTIONS.glob("*.ipynb"))
            for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"
            for block in c.source.split("### BEGIN SOLUTION")[1:]
            for line in block.split("### END SOLUTION")[0].splitlines()[1:] if line.strip()]


def test_assignments_without_solutions_say_where_they_are(tmp_path, capsys):
    assert main(["assignments", "--check", "--solutions", str(tmp_path)]) == 2
    assert "teacher material" in capsys.readouterr().err
