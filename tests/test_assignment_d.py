"""Assignment D (inverting and editing with FireFlow on the mini FLUX): its self-checks name the typical mistakes,
the grader judges the same mistakes on hidden cases in its own process, and `grade` gives the solution full
marks, the blank student copy zero and a V injection in the wrong steps zero for D.2, saying so."""

from __future__ import annotations

import csv
import tempfile

import nbformat
import numpy as np
import pytest

from fireflow_edu.cli import main
from fireflow_edu.grading import check_background_psnr, check_fireflow_pass, check_v_injection
from fireflow_edu.grading.student import SOLUTIONS, STUDENT, nbgrader_metadata

ASSIGNMENT = "d_inversion_editing"
SOLUTION = SOLUTIONS / f"{ASSIGNMENT}.ipynb"


def _solution_sources() -> dict[str, str]:
    """The solution's answer cells by function name, without the markers."""
    cells = nbformat.read(SOLUTION, as_version=4).cells
    sources = {}
    for cell in cells:
        for name in ("fireflow_pass", "edit_with_v_injection", "background_psnr"):
            if cell.cell_type == "code" and f"def {name}(" in cell.source:
                sources[name] = "\n".join(line for line in cell.source.splitlines() if "SOLUTION" not in line)
    return sources


def _replaced(source: str, old: str, new: str, count: int = 1) -> str:
    assert source.count(old) == count, old
    return source.replace(old, new)


SOURCES = _solution_sources()
WRONG = {  # typical mistakes, each a small change of the solution
    "fireflow_pass": {
        "midpoint": _replaced(SOURCES["fireflow_pass"], "        note(step, \"mid\")\n",
                              "        note(step, \"mid\")\n        v_reused = velocity(x, grid[step])\n"),
        "abs_h": _replaced(SOURCES["fireflow_pass"], "h = grid[step + 1] - grid[step]",
                           "h = abs(grid[step + 1] - grid[step])"),
        "no_notes": _replaced(SOURCES["fireflow_pass"], "    note(0, \"start\")\n", ""),
    },
    "edit_with_v_injection": {
        "last": _replaced(SOURCES["edit_with_v_injection"], 'where["interval"] >= inject',
                          'where["interval"] < num_steps - inject'),
        "same_step": _replaced(SOURCES["edit_with_v_injection"], "interval=num_steps - 1 - step", "interval=step"),
        "none": _replaced(SOURCES["edit_with_v_injection"], "return stored_v.get(key)", "return None"),
        "hooks_left": _replaced(SOURCES["edit_with_v_injection"], "            handle.remove()", "            pass"),
    },
    "background_psnr": {
        "kept_only": "def background_psnr(source, edited, mask):\n"
                     "    keep = ~np.asarray(mask, dtype=bool)\n"
                     "    a, b = np.asarray(source, float)[keep] / 255, np.asarray(edited, float)[keep] / 255\n"
                     "    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))",
        "unscaled": _replaced(SOURCES["background_psnr"], "/ 255 * keep", "* keep", count=2),
        "mask_kept": _replaced(SOURCES["background_psnr"], "keep = 1.0 - np.asarray", "keep = 0.0 + np.asarray"),
    },
}


def _functions(**override: str) -> dict:
    """The solution's three functions, with ``override[name]`` (a source) in place of the solution's."""
    import functools

    namespace = {"np": np, "partial": functools.partial}
    for name, source in SOURCES.items():
        exec(override.get(name, source), namespace)
    return namespace


@pytest.fixture(scope="module")
def mini():
    import torch

    from fireflow_edu.mini.model import load_mini_pipeline
    from fireflow_edu.mini.scenes import TEST_SEEDS, make_edit

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the mini's tiny matrices: as fast on one thread, and no contention on a shared machine
    yield load_mini_pipeline(), make_edit(TEST_SEEDS[80_002], "change_color")
    torch.set_num_threads(threads)


def test_markers_give_nbgrader_metadata():
    cells = nbformat.read(SOLUTION, as_version=4).cells
    ids = [(nbgrader_metadata(c) or {}).get("grade_id") for c in cells if c.cell_type == "code"]
    assert ids == [None, "solution_d1", "check_d1", None, "solution_d2", "check_d2", "solution_d3", "check_d3", None]
    assert [c.metadata["nbgrader"]["grade_id"] for c in cells if "nbgrader" in c.metadata] == [i for i in ids if i]


def test_the_reference_is_the_package_s_edit(mini):
    """The latents the checks and the grader compare with decode to the image editing.edit returns."""
    from fireflow_edu.editing import edit, model_adapter
    from fireflow_edu.grading.checks import reference_latents

    pipe, case = mini
    prompts = case.source.render(), case.source.caption, case.target.caption
    _, latents = reference_latents(pipe, *prompts, 4, inject=2)
    decoded = model_adapter(pipe).decode(latents, 32, 32)
    assert np.array_equal(decoded, np.asarray(edit(pipe, *prompts, 4, inject=2, progress=False).image))


def test_the_fireflow_pass_check_passes_the_solution_and_names_mistakes(mini, capsys):
    pipe, case = mini
    args = (pipe, case.source.render(), case.source.caption)
    check_fireflow_pass(_functions()["fireflow_pass"], *args)
    assert capsys.readouterr().out.startswith("PASS Exercise D.1: fireflow_pass inverts and reconstructs as FireFlow "
                                              "does: 9 + 9 NFE")
    hints = {"midpoint": "9 times in a pass of 4 steps: evaluating v\\(x, t\\) at every step's start is the midpoint",
             "abs_h": "inversion is right but the reconstruction .* never abs\\(h\\)",
             "no_notes": "before_call\\(0, 'start'\\) before the first"}
    for mistake, hint in hints.items():
        with pytest.raises(AssertionError, match=hint):
            check_fireflow_pass(_functions(fireflow_pass=WRONG["fireflow_pass"][mistake])["fireflow_pass"], *args,
                                steps=4)


def test_the_v_injection_check_passes_the_solution_and_names_mistakes(mini, capsys):
    pipe, case = mini
    args = (pipe, case.source.render(), case.source.caption, case.target.caption)
    check_v_injection(_functions()["edit_with_v_injection"], *args, steps=4)
    out = capsys.readouterr().out
    assert "PASS Exercise D.2: edit_with_v_injection equals the package's edit for inject = 1, 2: 5 + 5 NFE" in out
    hints = {"last": "in the last 1 denoising step \\(nearest the data\\) instead of the first 1 denoising step",
             "same_step": "stored at the same step index",
             "none": "equals the edit without injection",
             "hooks_left": "left 6 forward hook\\(s\\) on the transformer"}
    for mistake, hint in hints.items():
        edit = _functions(edit_with_v_injection=WRONG["edit_with_v_injection"][mistake])["edit_with_v_injection"]
        with pytest.raises(AssertionError, match=hint):
            check_v_injection(edit, *args, steps=4, injects=(1,))
    assert not any(module._forward_hooks for module in pipe.transformer.modules())  # the check took them off


def test_the_background_psnr_check_passes_the_solution_and_names_mistakes(capsys):
    check_background_psnr(_functions()["background_psnr"])
    assert capsys.readouterr().out.startswith("PASS Exercise D.3")
    hints = {"kept_only": "unedited pixels only", "unscaled": "0-255 values", "mask_kept": "measured the edited region"}
    for mistake, hint in hints.items():
        with pytest.raises(AssertionError, match=hint):
            check_background_psnr(_functions(background_psnr=WRONG["background_psnr"][mistake])["background_psnr"])


def test_the_grader_judges_fresh_cases_against_the_reference(mini):
    """What the grader does with a kernel's answers, without the kernel: fresh cases, the probe, the verdict."""
    from fireflow_edu.grading.exercises import ASSIGNMENTS
    from fireflow_edu.grading.judge import draw, verdict
    from fireflow_edu.grading.probe import PROBES

    pipe, _ = mini
    rng = np.random.default_rng(5)
    round_trip, injection, background = ASSIGNMENTS[ASSIGNMENT]
    right, wrong = _functions(), _functions(edit_with_v_injection=WRONG["edit_with_v_injection"]["last"],
                                            background_psnr=WRONG["background_psnr"]["kept_only"])
    first, second = draw(injection, np.random.default_rng(1)), draw(injection, np.random.default_rng(2))
    assert first["cases"][0]["seed"] != second["cases"][0]["seed"]
    assert first == draw(injection, np.random.default_rng(1))
    for exercise in (round_trip, injection, background):
        item = draw(exercise, rng)
        answers = {name: {"module": "__main__", **PROBES[exercise.kind](functions[exercise.function], item)}
                   for name, functions in (("right", right), ("wrong", wrong))}
        assert verdict(exercise, item, answers["right"]) is None, exercise
        if exercise is injection:
            assert "injects V in the last" in verdict(exercise, item, answers["wrong"])
        if exercise is background:
            assert "averaged over the unedited pixels only" in verdict(exercise, item, answers["wrong"])


def test_code_that_borrows_the_package_s_editing_scores_zero():
    from fireflow_edu.grading.exercises import ASSIGNMENTS
    from fireflow_edu.grading.judge import borrowed

    round_trip, injection, background = ASSIGNMENTS[ASSIGNMENT]
    sources = [SOURCES["fireflow_pass"], "from fireflow_edu.editing import edit\n\n\ndef edit_with_v_injection(*a):\n"
               "    return edit(*a)"]
    assert "borrows the package's own code for edit_with_v_injection (code cell 2 uses `edit`)" in \
        borrowed(injection, sources)
    assert borrowed(background, sources) is None
    assert borrowed(round_trip, [SOURCES["fireflow_pass"]]) is None
    assert "uses `integrate`" in borrowed(round_trip, ["from fireflow_edu.solvers import integrate"])
    assert "uses `region_metrics`" in borrowed(background, ["import fireflow_edu.piebench.metrics as m\n"
                                                            "m.region_metrics"])


@pytest.mark.slow
def test_grade_gives_the_solution_full_marks_the_blank_copy_zero_and_a_late_injection_zero(tmp_path, tmp_path_factory,
                                                                                          monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("private_folders")))
    folder = tmp_path / "submissions"
    folder.mkdir()
    nbformat.write(nbformat.read(SOLUTION, as_version=4), folder / "solved.ipynb")
    nbformat.write(nbformat.read(STUDENT / f"{ASSIGNMENT}.ipynb", as_version=4), folder / "blank.ipynb")
    late = nbformat.read(SOLUTION, as_version=4)
    for cell in late.cells:
        if "def edit_with_v_injection(" in cell.source:
            cell.source = _replaced(cell.source, 'where["interval"] >= inject',
                                    'where["interval"] < num_steps - inject')
    nbformat.write(late, folder / "late_injection.ipynb")
    out = tmp_path / "grades.csv"
    assert main(["grade", str(folder), "--assignment", ASSIGNMENT, "--out", str(out), "--seed", "0"]) == 0
    rows = {row["student"]: row for row in csv.DictReader(out.open())}
    assert (rows["solved"]["score"], rows["solved"]["max_score"]) == ("3", "3"), rows["solved"]["reason"]
    assert rows["blank"]["score"] == "0" and "NotImplementedError: Exercise D.1" in rows["blank"]["reason"]
    late_row = rows["late_injection"]
    assert [late_row[f"Exercise D.{i}"] for i in (1, 2, 3)] == ["1", "0", "1"], late_row["reason"]
    assert "injects V in the last" in late_row["reason"] and "instead of the first" in late_row["reason"]
