"""Notebooks are committed without outputs and start with a seed cell."""

import ast
import json
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
