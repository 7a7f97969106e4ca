"""The tutorials as a site: Sphinx, MyST-NB and sphinx-book-theme (``python3 dev.py docs``).

Sources: ``tutorials`` links to ``notebooks/`` (the tutorials ``0*.ipynb``; the assignments' solutions in
``notebooks/assignments`` are teacher material and stay out), ``assignments`` to the student copies in
``fireflow_edu/grading/assignments``, the ``guide`` pages include the README's sections, ``api`` the docstrings.
Notebooks are executed by MyST-NB through jupyter-cache, keyed by their code cells: a rebuild after a prose change
executes nothing. Fast and full mode keep caches of their own (``FIREFLOW_EDU_FAST``, read by
:func:`fireflow_edu.config.fast_mode`), since the key does not see the mode.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fireflow_edu.config import fast_mode

DOCS = Path(__file__).resolve().parent
ABSOLUTE_VALUE = re.compile(r"(?<![\w\\])\|(\w+)\|")
UNPACKING = re.compile(r"(?<=[\[(, ])\*(?=[A-Za-z_][\w.]*[\]),])")
ASSIGNMENT_LINK = re.compile(r"\]\(assignments/([\w-]+\.ipynb)\)")

project = "fireflow_edu"
author = "fireflow_edu contributors"
copyright = "2026, fireflow_edu contributors"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode", "sphinx-mathjax-offline"]
exclude_patterns = ["_build", "tutorials/assignments", "**/.ipynb_checkpoints"]
suppress_warnings = ["myst.header"]  # README sections start at "##" under a page's own title

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

nb_execution_mode = "cache"
nb_execution_cache_path = str(DOCS / "_build" / ("fast" if fast_mode() else "") / "jupyter_cache")  # dev.py's folders
# Full mode trains and sweeps as a learner's run does; a cell stuck past this still ends the build.
nb_execution_timeout = 1800
nb_execution_raise_on_error = True
nb_execution_show_tb = True

autodoc_member_order = "bysource"
autodoc_typehints = "description"

html_theme = "sphinx_book_theme"
html_title = "fireflow_edu"
html_theme_options = {"use_download_button": True, "show_toc_level": 2}
html_static_path: list[str] = []


def allow_errors_in_student_copies(app, docname: str, source: list[str]) -> None:
    """An unanswered student copy raises ``NotImplementedError("Exercise X.Y: ...")`` where each answer goes:
    its page shows what a student sees on opening it, so execution errors are allowed there alone."""
    if docname.startswith("assignments/"):
        notebook = json.loads(source[0])
        notebook.setdefault("metadata", {})["mystnb"] = {"execution_allow_errors": True,
                                                         "execution_raise_on_error": False}
        source[0] = json.dumps(notebook)


def assignment_links_to_student_copies(app, docname: str, source: list[str]) -> None:
    """A tutorial links an assignment as ``assignments/<name>.ipynb``, the solution beside it in ``notebooks/``,
    which stays out of the site: there the link leads to the student copy's page (``assignments/<name>``). A link
    to an assignment without a student copy is left as it is, so the build still warns about it."""
    if not docname.startswith("tutorials/"):
        return
    notebook = json.loads(source[0])

    def to_student_copy(link: re.Match) -> str:
        name = link.group(1)
        return f"](../assignments/{name})" if (DOCS / "assignments" / name).is_file() else link.group(0)

    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = ASSIGNMENT_LINK.sub(to_student_copy, text)
    source[0] = json.dumps(notebook)


def plain_text_in_docstrings(app, what, name, obj, options, lines: list[str]) -> None:
    """The package's docstrings are plain text with reST roles: ``|h|`` is an absolute value and ``*x.shape`` in
    ``[N + 1, *x.shape]`` unpacks a shape, never a substitution or the start of emphasis."""
    lines[:] = [UNPACKING.sub(r"\\*", ABSOLUTE_VALUE.sub(r"\\|\1\\|", line)) for line in lines]


def setup(app):
    app.connect("source-read", allow_errors_in_student_copies)
    app.connect("source-read", assignment_links_to_student_copies)
    app.connect("autodoc-process-docstring", plain_text_in_docstrings)
