"""The package's import rule (stated in fireflow_edu/__init__.py): lower layers never import higher ones, a
model family never imports another (the mini FLUX is a FLUX and may use flux/), no import circles, and the
command line imports only what the chosen command uses."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fireflow_edu

PACKAGE = Path(fireflow_edu.__file__).parent
LAYERS = (  # bottom to top; the longest matching prefix decides a module's layer
    ("solvers", "schedules", "fields", "config", "reporting", "timing", "lazy"),
    ("analysis", "plots", "toy"),
    ("editing", "grading"),  # family-neutral: editing names no family (its registry maps class names to modules)
    ("flux", "sd3", "mini", "piebench"),  # the model families, and PIE-Bench beside them
    ("toy.commands", "editing.commands", "flux.commands", "mini.commands", "piebench.commands", "grading.commands",
     "models", "cli", "__main__"),
)
FAMILIES = ("flux", "sd3", "mini")
MAY_USE = {("mini", "flux")}  # the mini FLUX is a FluxPipeline
HEAVY = ("torch", "diffusers", "transformers", "accelerate", "matplotlib", "scipy", "nbformat", "PIL")


def layer(module: str) -> int:
    matches = [(len(name), rank) for rank, names in enumerate(LAYERS) for name in names
               if module == name or module.startswith(name + ".")]
    assert matches, f"fireflow_edu.{module} is in no layer: add it to LAYERS and the package docstring"
    return max(matches)[1]


def package_imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Modules of this package that ``path`` imports (dotted, relative to the package)."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    package = parts[:-1]  # the package a relative import starts from (also for __init__.py)
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                targets = [".".join([*base, node.module])] if node.module else [
                    ".".join([*base, alias.name]) for alias in node.names]
            elif (node.module or "").startswith("fireflow_edu."):
                targets = [node.module.removeprefix("fireflow_edu.")]
            else:
                continue
            found.update(target for target in targets if target)
        elif isinstance(node, ast.Import):
            found.update(alias.name.removeprefix("fireflow_edu.") for alias in node.names
                         if alias.name.startswith("fireflow_edu."))
    return {module for module in found if (PACKAGE / module.replace(".", "/")).exists()
            or (PACKAGE / (module.replace(".", "/") + ".py")).exists()}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = [path for path in sorted(PACKAGE.rglob("*.py")) if path != PACKAGE / "__init__.py"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: module_name(path))
def test_no_module_imports_a_higher_layer(path):
    importer = module_name(path)
    upward = sorted(module for module in package_imports(path) if layer(module) > layer(importer))
    assert not upward, f"fireflow_edu.{importer} (layer {layer(importer)}) imports higher layers: {upward}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: module_name(path))
def test_no_family_imports_another_and_piebench_imports_none(path):
    importer = module_name(path)
    if layer(importer) != 3:
        return
    own = importer.split(".")[0]
    others = {module.split(".")[0] for module in package_imports(path)} & set(FAMILIES) - {own}
    assert not {other for other in others if (own, other) not in MAY_USE}, f"fireflow_edu.{importer} imports {others}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "editing").rglob("*.py")), ids=lambda path: module_name(path))
def test_editing_names_no_family(path):
    # the command line's family switches live in fireflow_edu.models; editing/ reaches families only by the class
    # names and module paths of its adapter registry
    families = {module.split(".")[0] for module in package_imports(path)} & set(FAMILIES)
    assert not families, f"fireflow_edu.{module_name(path)} imports {families}"


def test_no_import_circles():
    graph = {module_name(path): package_imports(path, top_level_only=True) for path in SOURCES}
    done, stack = set(), []

    def visit(module):
        if module in stack:
            raise AssertionError("import circle: " + " -> ".join(stack[stack.index(module):] + [module]))
        if module in done:
            return
        stack.append(module)
        for target in graph.get(module, ()):
            visit(target)
        stack.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    bad = PACKAGE / "solvers.py"
    fake = tmp_path / "solvers.py"
    fake.write_text(bad.read_text() + "\n\ndef _f():\n    from .flux.commands import configure\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    (tmp_path / "flux").mkdir()
    (tmp_path / "flux" / "commands.py").write_text("")
    assert {module for module in package_imports(fake) if layer(module) > layer("solvers")} == {"flux.commands"}


def test_the_checker_sees_a_family_importing_another(tmp_path, monkeypatch):
    (tmp_path / "sd3").mkdir()
    (tmp_path / "flux").mkdir()
    (tmp_path / "flux" / "tiny.py").write_text("")
    (tmp_path / "sd3" / "adapter.py").write_text("from ..flux.tiny import tiny_vae\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    with pytest.raises(AssertionError, match="imports"):
        test_no_family_imports_another_and_piebench_imports_none(tmp_path / "sd3" / "adapter.py")


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["grade", "--help"], ["mini-train", "--help"]])
def test_help_imports_no_heavy_library(argv):
    code = ("import sys\nfrom fireflow_edu.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print('LOADED', *sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")
    stderr = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    loaded = stderr.strip().splitlines()[-1].split()[1:]
    allowed = {"nbformat"} if argv[0] == "grade" else set()  # grade's arguments name the solutions folder
    assert set(loaded) <= allowed, f"{argv} imported {loaded}"
