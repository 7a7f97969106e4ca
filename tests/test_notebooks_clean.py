"""Notebooks are committed without outputs, start with a seed cell, and the tutorials read their own outputs."""

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted(p for p in (Path(__file__).parent.parent / "notebooks").rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts)


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_seed_cell_on_top_and_checks_at_the_end(path):
    code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert sets_a_seed("".join(code[0]["source"])), f"{path.name}: the first code cell must call torch.manual_seed"
    if "assignments" not in path.parts:  # assignments end each exercise with a check cell instead
        assert "assert" in "".join(code[-1]["source"]), f"{path.name}: the last code cell must assert the key numbers"


def sets_a_seed(source: str) -> bool:
    """True when the code calls a seeding function (torch.manual_seed, np.random.seed...); comments do not count."""
    calls = [node.func for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)]
    return any(getattr(func, "attr", getattr(func, "id", "")) in ("manual_seed", "seed") for func in calls)


def test_the_seed_check_needs_a_call():
    assert sets_a_seed("import torch\ntorch.manual_seed(0)")
    assert not sets_a_seed("# seed cell\nSEED = 0")


MIN_FONT_PT, MAX_FIGURE_INCHES = 9, 9  # legible at JupyterLab's width (tests/test_browser.py measures the shrink)
TUTORIALS = [p for p in NOTEBOOKS if "assignments" not in p.parts]
PLOTTING = [Path(__file__).parent.parent / "fireflow_edu" / name for name in ("plots.py", "analysis.py")]


def small_fonts_and_wide_figures(source: str) -> list[str]:
    """Literal ``fontsize=`` below MIN_FONT_PT and ``figsize=(w, h)`` wider than MAX_FIGURE_INCHES in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.keyword) or not isinstance(node.value, (ast.Constant, ast.Tuple)):
            continue
        if node.arg == "fontsize" and isinstance(node.value, ast.Constant) and isinstance(node.value.value, (int, float)) \
                and node.value.value < MIN_FONT_PT:
            found.append(f"line {node.lineno}: fontsize={node.value.value}")
        if node.arg == "figsize" and isinstance(node.value, ast.Tuple) and isinstance(node.value.elts[0], ast.Constant) \
                and node.value.elts[0].value > MAX_FIGURE_INCHES:
            found.append(f"line {node.lineno}: figsize width {node.value.elts[0].value}")
    return found


def code_cells(path: Path) -> list[str]:
    return ["\n".join(line for line in "".join(c["source"]).splitlines() if not line.lstrip().startswith(("%", "!")))
            for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", TUTORIALS + PLOTTING, ids=lambda p: p.name)
def test_figures_are_legible_at_jupyterlab_width(path):
    sources = code_cells(path) if path.suffix == ".ipynb" else [path.read_text()]
    found = [f"cell {i}, {problem}" for i, source in enumerate(sources) for problem in small_fonts_and_wide_figures(source)]
    assert not found, f"{path.name}: fonts under {MIN_FONT_PT} pt or figures over {MAX_FIGURE_INCHES} in: {found}"


def test_the_legibility_check_reads_literals():
    assert small_fonts_and_wide_figures("plt.subplots(1, 3, figsize=(15, 3)); ax.set_title('x', fontsize=7)") == [
        "line 1: figsize width 15", "line 1: fontsize=7"]
    assert small_fonts_and_wide_figures("plt.subplots(figsize=(6, 3)); ax.legend(fontsize=9)") == []


# Issue 33: a tutorial teaches only what its outputs show. Every code cell that shows results (a figure or printed
# numbers) is followed at once by a "what to look at" code cell whose printed sentences are computed from those
# results, so they stay true when the model or the mode changes; an interactive cell draws one static panel and
# is followed by questions to answer by playing; measured-looking numbers are never typed into markdown; the
# checks assert conclusions with margins, not digits; and each tutorial points to its assignment.
READING_MARK = "# What to look at"
# a decimal, a percentage, a ratio ("2.5x") or a level in dB, not inside a word ("SD3.5", "FLUX.1", "256x256")
TYPED_NUMBER = re.compile(r"(?<![\w.+-])[+-]?\d+(?:\.\d+)?(?:\s?%|\s?dB\b|x\b)|(?<![\w.+-])[+-]?\d+\.\d+")
ASSIGNMENT_LINK = re.compile(r"assignments/([a-z]_\w+\.ipynb)")


def calls(source: str) -> list[str]:
    """The names called in ``source``: ``print`` for print(...), ``show`` for plt.show() and for a function show()."""
    return [getattr(node.func, "attr", getattr(node.func, "id", "")) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call)]


def shows_results(source: str) -> bool:
    return any(name in ("print", "show", "display", "imshow") for name in calls(source))


def computed_sentences(source: str) -> list[str]:
    """Problems of a "what to look at" cell: it must print, and every print must format at least one value."""
    prints = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
              and getattr(node.func, "id", "") == "print"]
    if not prints:
        return ["prints nothing"]
    typed = [node.lineno for node in prints if not any(isinstance(part, ast.FormattedValue)
                                                      for arg in node.args for part in ast.walk(arg))]
    return [f"line {n}: a print with no computed value (type it as markdown or compute it)" for n in typed]


def interact_target(source: str) -> str | None:
    """The function an ``interact(f, ...)`` call in ``source`` drives, or None."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "interact":
            return getattr(node.args[0], "id", None) if node.args else None
    return None


def draws_statically(source: str, function: str) -> bool:
    """True when ``function`` is called as a statement at the cell's top level (not only inside a try/except)."""
    return any(isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
               and getattr(node.value.func, "id", "") == function for node in ast.parse(source).body)


def without_math_and_code(markdown: str) -> str:
    markdown = re.sub(r"\$\$.*?\$\$", "", markdown, flags=re.S)
    markdown = re.sub(r"\$[^$\n]*\$", "", markdown)
    markdown = re.sub(r"`[^`\n]*`", "", markdown)
    return re.sub(r"\]\([^)]*\)", "]", markdown)  # link targets


def reading_problems(cells: list[dict]) -> list[str]:
    """Every way ``cells`` (a tutorial's) break the rules above."""
    problems = []
    sources = ["\n".join(line for line in "".join(c["source"]).splitlines() if not line.lstrip().startswith(("%", "!")))
               for c in cells]
    code = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
    for i in code[1:-1]:  # the seed cell and the checks are neither results nor readings
        source = sources[i]
        if source.startswith(READING_MARK) or not shows_results(source):
            continue
        following = cells[i + 1] if i + 1 < len(cells) else None
        function = interact_target(source)
        if function is not None:
            if not draws_statically(source, function):
                problems.append(f"cell {i}: an interactive cell must first call {function}(...) itself, so a saved "
                                "notebook shows a panel")
            if following is None or following["cell_type"] != "markdown" or sources[i + 1].count("?") < 2:
                problems.append(f"cell {i}: an interactive cell must be followed by a markdown cell posing at least "
                                "two questions to answer by playing")
        elif following is None or following["cell_type"] != "code" or not sources[i + 1].startswith(READING_MARK):
            problems.append(f"cell {i} shows results: the next cell must be a code cell starting {READING_MARK!r} "
                            "that prints sentences computed from them")
        else:
            problems += [f"cell {i + 1}: {p}" for p in computed_sentences(sources[i + 1])]
    for i, c in enumerate(cells):
        if c["cell_type"] == "markdown":
            typed = TYPED_NUMBER.findall(without_math_and_code(sources[i]))
            if typed:
                problems.append(f"cell {i}: numbers typed in markdown {typed}: print them from a computed cell "
                                "(a setting can stay, written as code: `guidance=1.0`)")
    floats = [node.value for node in ast.walk(ast.parse(sources[code[-1]]))
              if isinstance(node, ast.Constant) and isinstance(node.value, float)
              and len(f"{abs(node.value):.6g}".replace(".", "").strip("0")) > 2]
    if floats:
        problems.append(f"checks cell: {floats} look like measured digits; assert orderings and ratios with margins")
    links = [name for i, c in enumerate(cells) if c["cell_type"] == "markdown"
             for name in ASSIGNMENT_LINK.findall(sources[i])]
    if not links:
        problems.append("no markdown cell points to an assignment (notebooks/assignments/<letter>_<name>.ipynb)")
    problems += [f"points to a missing assignment {name}" for name in links
                 if not (Path(__file__).parent.parent / "notebooks" / "assignments" / name).exists()]
    return problems


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorials_read_their_own_outputs(path):
    problems = reading_problems(json.loads(path.read_text())["cells"])
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


def cell(kind: str, source: str) -> dict:
    return {"cell_type": kind, "source": source}


def test_the_reading_check_catches_each_slip():
    seed, checks = cell("code", "torch.manual_seed(0)"), cell("code", "assert a < 0.5 * b")
    pointer = cell("markdown", "Next: `notebooks/assignments/a_euler_step.ipynb`, see assignments/a_euler_step.ipynb")
    figure = cell("code", "plt.plot(x); plt.show()")
    reading = cell("code", "# What to look at\nprint(f'FireFlow is {ratio:.1f}x better')")
    assert reading_problems([seed, figure, reading, pointer, checks]) == []
    assert "the next cell must be" in reading_problems([seed, figure, pointer, checks])[0]
    typed = cell("code", "# What to look at\nprint('FireFlow is best')")
    assert "no computed value" in reading_problems([seed, figure, typed, pointer, checks])[0]
    claim = cell("markdown", "FireFlow reaches 41.7 dB, 2.5x better, 30% of it; $h = 0.5$ and `g=2.0` are fine")
    assert reading_problems([seed, claim, pointer, checks]) == [
        "cell 1: numbers typed in markdown ['41.7 dB', '2.5x', '30%']: print them from a computed cell "
        "(a setting can stay, written as code: `guidance=1.0`)"]
    widget = cell("code", "def show(n=4):\n    plt.show()\ntry:\n    interact(show, n=(1, 9))\nexcept ImportError:\n"
                          "    show()")
    problems = reading_problems([seed, widget, cell("markdown", "Play."), pointer, checks])
    assert [p.split(":")[1].split()[:3] for p in problems] == [["an", "interactive", "cell"]] * 2
    good_widget = cell("code", "def show(n=4):\n    plt.show()\nshow()\ninteract(show, n=(1, 9))")
    questions = cell("markdown", "1. Where do they differ? 2. Which is smallest?")
    assert reading_problems([seed, good_widget, questions, pointer, checks]) == []
    assert "measured digits" in reading_problems([seed, pointer, cell("code", "assert abs(w - 1.213) < 0.05")])[0]
    assert reading_problems([seed, checks])[0].startswith("no markdown cell points")
    assert "missing assignment" in reading_problems([seed, cell("markdown", "assignments/z_none.ipynb"), checks])[0]
