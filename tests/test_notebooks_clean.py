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
