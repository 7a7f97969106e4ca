"""Nothing written outside OUT, nothing lost: names read from input that become paths are refused when they would
leave their folder, results are written atomically, a resume survives a torn case file."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from fireflow_edu.cli import main
from fireflow_edu.editing.batch import read_cases
from fireflow_edu.editing.metrics import psnr
from fireflow_edu.mini.piebench import write_mini_piebench
from fireflow_edu.piebench import harness
from fireflow_edu.piebench.harness import read_piebench
from fireflow_edu.reporting import save_torch, write_atomically, write_json


def _no_model(*args, **kwargs):
    raise AssertionError("a model was loaded although the input was refused")


def _mini_piebench_with(tmp_path: Path, change) -> tuple[Path, dict]:
    """A two-case mini PIE-Bench whose first mapping entry ``change(key, entry)`` rewrites; returns its folder."""
    data = tmp_path / "pie"
    write_mini_piebench(data, per_kind=1)
    mapping = json.loads((data / "mapping_file.json").read_text())
    mapping = dict(list(mapping.items())[:2])
    first = next(iter(mapping))
    key, entry = change(first, dict(mapping.pop(first)))
    mapping = {key: entry, **mapping}
    (data / "mapping_file.json").write_text(json.dumps(mapping))
    return data, mapping


@pytest.mark.parametrize("name, change, refused", [
    ("parent image path", lambda k, e: (k, {**e, "image_path": "../../x.png"}), "'../../x.png'"),
    ("absolute image path", lambda k, e: (k, {**e, "image_path": "/tmp/x.png"}), "'/tmp/x.png'"),
    ("parent key", lambda k, e: ("../../name", e), "case key: '../../name'"),
    ("key with a separator", lambda k, e: ("sub/name", e), "case key: 'sub/name'"),
    ("absolute key", lambda k, e: ("/tmp/name", e), "case key: '/tmp/name'"),
])
def test_piebench_refuses_names_that_leave_out_before_any_model_call(tmp_path, capsys, name, change, refused):
    data, mapping = _mini_piebench_with(tmp_path, change)
    source = tmp_path / "x.png"  # what ../../x.png names from annotation_images/: it must stay untouched
    Image.fromarray(np.full((32, 32, 3), 7, dtype=np.uint8)).save(source)
    before = source.read_bytes()
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="refused as the name of an output file"):
        harness.run_piebench(data, out, _no_model, _no_model)
    assert main(["piebench", "--data", str(data), "--model", "mini", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("error:") == 1 and refused in error and "refused as the name of an output file" in error
    assert str(data / "mapping_file.json") in error and "accepted:" in error
    assert source.read_bytes() == before and not out.exists() and not (tmp_path / "name.json").exists()


def test_piebench_refuses_two_cases_on_one_image_path(tmp_path):
    data, mapping = _mini_piebench_with(tmp_path, lambda k, e: (k, e))
    first, second = mapping
    mapping[second]["image_path"] = mapping[first]["image_path"]
    (data / "mapping_file.json").write_text(json.dumps(mapping))
    with pytest.raises(ValueError, match=f"case {second}'s image_path .* is also case {first}'s"):
        read_piebench(data)


@pytest.mark.parametrize("case_id, refused", [("../x", "'../x'"), ("a/b", "'a/b'"), ("/tmp/x", "'/tmp/x'"),
                                              ("a\\b", "'a\\\\b'"), ("..", "'..'"), ("", "''")])
def test_batch_refuses_ids_that_are_no_file_name(tmp_path, case_id, refused):
    path = tmp_path / "cases.jsonl"
    line = {"image": "skimage:coffee", "source_prompt": "a cup", "target_prompt": "a red cup"}
    path.write_text(json.dumps({**line, "id": "fine"}) + "\n" + json.dumps({**line, "id": case_id}) + "\n")
    with pytest.raises(ValueError) as caught:
        read_cases(path)
    assert str(caught.value).startswith(f"{path}:2: id: {refused} is refused as the name of an output file")


def test_batch_refuses_a_repeated_id_and_an_id_that_is_no_name(tmp_path):
    path = tmp_path / "cases.jsonl"
    line = {"image": "skimage:coffee", "source_prompt": "a cup", "target_prompt": "a red cup"}
    path.write_text("\n".join(json.dumps({**line, "id": i}) for i in ("3", "x", 3)) + "\n")
    with pytest.raises(ValueError, match=r"cases.jsonl:3: id '3' is also the id of line 1"):
        read_cases(path)
    path.write_text(json.dumps({**line, "id": [1]}) + "\n")
    with pytest.raises(ValueError, match=r"cases.jsonl:1: id \[1\] is neither a string nor an integer"):
        read_cases(path)


def test_batch_refuses_a_bad_id_from_the_command_line_before_loading_a_model(tmp_path, capsys):
    from fireflow_edu.editing.batch import run_cases

    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps({"id": "../../evil", "image": "skimage:coffee", "source_prompt": "a",
                                "target_prompt": "b"}) + "\n")
    with pytest.raises(ValueError, match="'../../evil' is refused"):
        run_cases(path, tmp_path / "out", _no_model)
    assert main(["batch", "--cases", str(path), "--out", str(tmp_path / "out"), "--tiny"]) == 2
    assert "cases.jsonl:1: id: '../../evil' is refused" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_batch_saves_each_edited_image_as_the_metrics_saw_it(tmp_path):
    source = tmp_path / "scene.png"
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(source)
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps({"id": "cup", "image": "scene.png", "source_prompt": "a cup",
                                "target_prompt": "a red cup"}) + "\n")
    out = tmp_path / "out"
    assert main(["batch", "--cases", str(path), "--out", str(out), "--tiny", "--steps", "2"]) == 0
    row = json.loads((out / "results.jsonl").read_text())
    assert row["image"] == "images/cup.png" and sorted(p.name for p in (out / "images").iterdir()) == ["cup.png"]
    with Image.open(out / row["image"]) as saved:
        assert saved.format == "PNG" and saved.size == (64, 64)
        edited = np.asarray(saved.convert("RGB"))
    assert not np.array_equal(edited, pixels)  # an edit, not a copy of the source
    assert psnr(pixels, edited) == pytest.approx(row["psnr"], abs=1e-9)  # lossless: the image the row measured
    assert "mean_image" not in json.loads((out / "summary.json").read_text())


def test_an_interrupted_write_leaves_the_old_file_whole_and_no_temporary(tmp_path):
    path = write_json(tmp_path / "deep" / "result.json", {"old": 1})

    def torn(temporary):
        temporary.write_text('{"new": "half')
        raise KeyboardInterrupt  # killed mid-write

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, torn)
    assert json.loads(path.read_text()) == {"old": 1} and [p.name for p in path.parent.iterdir()] == ["result.json"]
    with pytest.raises(Exception):
        save_torch({"f": lambda: 0}, tmp_path / "deep" / "result.json")  # a lambda cannot be pickled
    assert json.loads(path.read_text()) == {"old": 1} and [p.name for p in path.parent.iterdir()] == ["result.json"]


def test_a_resume_redoes_a_case_whose_file_is_torn_and_names_it(tmp_path, monkeypatch):
    data, out = tmp_path / "pie", tmp_path / "run"
    write_mini_piebench(data, per_kind=1)
    done = []

    def quick_edit(pipe, case, scorer, out, **settings):  # the harness's bookkeeping, not the model, is tested here
        done.append(case.key)
        return write_json(out / "cases" / f"{case.key}.json", {"key": case.key, "editing_type": case.editing_type,
                                                                 "nfe": 18, "seconds": 1.0})

    monkeypatch.setattr(harness, "edit_piebench_case", quick_edit)
    run = lambda: harness.run_piebench(data, out, lambda device: None, lambda device: SimpleNamespace(absent=()))
    assert run()["all"]["cases"] == 5 and len(done) == 5
    torn = out / "cases" / f"{done[2]}.json"
    torn.write_text(torn.read_text()[:20])  # a write killed halfway, as before writes were atomic
    done.clear()
    with pytest.warns(UserWarning, match=f"{torn} cannot be read .*Unterminated string.*: its case counts as not "
                                         "done, so a run does it again"):
        summary = run()
    assert done == [torn.stem] and summary["all"]["cases"] == 5 and json.loads(torn.read_text())["nfe"] == 18


# Nothing a teacher or a student wrote is overwritten (issue 31): assignments --student, grade --out, mini-piebench.

def _solutions(tmp_path: Path) -> Path:
    """A copy of the repository's solution notebooks, the first one's nbgrader metadata dropped so that the
    ``assignments`` command would rewrite it too."""
    import shutil

    import nbformat

    from fireflow_edu.grading.student import SOLUTIONS

    folder = tmp_path / "solutions"
    shutil.copytree(SOLUTIONS, folder)
    first = sorted(folder.glob("*.ipynb"))[0]
    notebook = nbformat.read(first, as_version=4)
    for cell in notebook.cells:
        cell.metadata.pop("nbgrader", None)
    nbformat.write(notebook, first)
    return folder


def _contents(folder: Path) -> dict:
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_assignments_never_writes_student_copies_over_the_solutions(tmp_path, capsys):
    solutions = _solutions(tmp_path)
    before = _contents(solutions)
    for extra in ([], ["--overwrite"]):
        assert main(["assignments", "--solutions", str(solutions), "--student", str(solutions), *extra]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "is the solutions folder" in error
    assert _contents(solutions) == before  # not even the nbgrader metadata was written: refused before any work


def test_assignments_refuses_a_folder_with_solution_notebooks_unless_overwrite(tmp_path, capsys):
    solutions = _solutions(tmp_path)
    names = sorted(path.name for path in solutions.glob("*.ipynb"))
    student = tmp_path / "class"
    student.mkdir()
    (student / "teacher_copy.ipynb").write_bytes((solutions / names[1]).read_bytes())
    before = _contents(solutions)
    assert main(["assignments", "--solutions", str(solutions), "--student", str(student)]) == 2
    error = capsys.readouterr().err
    assert "holds solution notebooks (### BEGIN SOLUTION in teacher_copy.ipynb)" in error and "--overwrite" in error
    assert _contents(solutions) == before and sorted(p.name for p in student.iterdir()) == ["teacher_copy.ipynb"]
    assert main(["assignments", "--solutions", str(solutions), "--student", str(student), "--overwrite"]) == 0
    assert sorted(p.name for p in student.iterdir()) == sorted([*names, "teacher_copy.ipynb"])
    assert _contents(solutions) != before  # the first solution regained its nbgrader metadata


def test_assignments_refuses_to_replace_a_students_notebook_unless_overwrite(tmp_path, capsys):
    solutions = _solutions(tmp_path)
    names = sorted(path.name for path in solutions.glob("*.ipynb"))
    student = tmp_path / "class"
    assert main(["assignments", "--solutions", str(solutions), "--student", str(student)]) == 0  # a fresh folder
    assert sorted(p.name for p in student.iterdir()) == names
    assert main(["assignments", "--solutions", str(solutions), "--student", str(student)]) == 0  # nothing to replace
    assert capsys.readouterr().out.endswith("0 notebook(s) updated\n")
    worked = student / names[0]
    worked.write_text(worked.read_text().replace("raise NotImplementedError", "return x  # my answer", 1))
    answer = worked.read_bytes()
    assert main(["assignments", "--solutions", str(solutions), "--student", str(student)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"holds {names[0]}, which the student copies would replace" in error
    assert worked.read_bytes() == answer
    assert main(["assignments", "--solutions", str(solutions), "--student", str(student), "--overwrite"]) == 0
    assert "my answer" not in worked.read_text()


def _submissions(tmp_path: Path) -> Path:
    """A submissions folder whose one notebook is unreadable: graded at once (zero, with the reason), no kernel."""
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "s1.ipynb").write_text("not a notebook")
    return folder


@pytest.mark.parametrize("out, what", [("sub/s1.ipynb", "inside the submissions folder"),
                                       ("sub/grades.csv", "inside the submissions folder"),
                                       ("sub", "inside the submissions folder"),
                                       ("notes.txt", "exists and is not a grades CSV"),
                                       ("folder", "is a folder")])
def test_grade_refuses_an_out_that_would_replace_a_submission_or_another_file(tmp_path, capsys, monkeypatch, out,
                                                                              what):
    from fireflow_edu.grading import grader

    submissions = _submissions(tmp_path)
    (tmp_path / "notes.txt").write_text("student,score\nmy own notes\n")  # a CSV, but not the grader's
    (tmp_path / "folder").mkdir()
    before = _contents(tmp_path)
    monkeypatch.setattr(grader, "grade_folder", _no_model)
    monkeypatch.chdir(tmp_path)
    assert main(["grade", str(submissions), "--assignment", "a_euler_step", "--out", out]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"--out {out} " in error and what in error
    assert _contents(tmp_path) == before


def test_grade_writes_over_a_grades_csv_it_wrote_for_any_assignment(tmp_path, capsys):
    import csv

    submissions, out = _submissions(tmp_path), tmp_path / "grades.csv"
    for assignment in ("c_fireflow_step", "a_euler_step"):  # the second run replaces the first's CSV
        assert main(["grade", str(submissions), "--assignment", assignment, "--out", str(out)]) == 0
        rows = list(csv.DictReader(out.open()))
        assert [row["student"] for row in rows] == ["s1"] and rows[0]["score"] == "0"
        assert "cannot read notebook" in rows[0]["reason"]
    assert "Exercise A.1" in out.read_text().splitlines()[0]


def test_mini_piebench_refuses_an_out_holding_a_benchmark_or_its_images_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "run"  # a piebench run on the mini benchmark: its edits sit where the sources would go
    edited = out / "annotation_images" / "1_change_object" / "100000000000.png"
    edited.parent.mkdir(parents=True)
    edited.write_bytes(b"an edited image")
    command = ["mini-piebench", "--out", str(out), "--per-kind", "1"]
    assert main(command) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "holds 1 of the images it would write (e.g. annotation_images/1_change_object/100000000000.png)" in error
    assert edited.read_bytes() == b"an edited image" and not (out / "mapping_file.json").exists()
    assert main([*command, "--overwrite"]) == 0 and len(read_piebench(out)) == 5
    with Image.open(edited) as image:
        assert image.size == (32, 32)
    assert main(command) == 2 and "already holds a PIE-Bench; pass --overwrite" in capsys.readouterr().err
    (tmp_path / "file").write_text("mine")
    assert main(["mini-piebench", "--out", str(tmp_path / "file")]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err and (tmp_path / "file").read_text() == "mine"


def test_piebench_refuses_an_out_that_is_another_pie_bench(tmp_path, capsys):
    data, other = tmp_path / "pie", tmp_path / "other"
    write_mini_piebench(data, per_kind=1)
    write_mini_piebench(other, per_kind=1)  # same image paths: its sources would be replaced by the edits
    before = _contents(other)
    assert main(["piebench", "--data", str(data), "--model", "mini", "--out", str(other)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"--out {other} is a PIE-Bench folder" in error
    assert _contents(other) == before
