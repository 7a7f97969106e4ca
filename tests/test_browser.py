"""The tutorials as a learner uses them: JupyterLab in Chromium, Run All Cells in fast mode, then the widgets.

For each tutorial notebook (a copy in a temporary folder) the test opens JupyterLab's page, runs every cell from
the Run menu, saves the notebook and fails on:

- an error output (read from the saved notebook, with its cell and message);
- "Error displaying widget", or a widget shown as its plain-text repr (the widget manager missing);
- a cell that ran longer than ``SLOW_CELL_SECONDS`` without a text progress bar (cell timing is recorded by
  JupyterLab's ``recordTiming`` setting);
- an interactive figure that does not redraw when its first slider moves, or a caption box that redraws
  before Enter or not after it;
- a figure JupyterLab shrinks below ``MIN_FIGURE_SCALE`` of its size at the page width a laptop shows (1280
  px), since its fonts shrink with it.

Screenshots of every figure go to ``out/browser/<notebook>/`` for a person to look at, with ``report.json``
(seconds per notebook and per cell) and the notebook as saved, whose outputs ``tests/test_docs.py`` renders.
Chromium is Debian's (``python3 dev.py test`` installs it when it can); without it, or without Playwright, the
test is skipped and nbval runs these notebooks instead (``conftest.py``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from conftest import browser_test_can_run

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
SCREENSHOTS = ROOT / "out" / "browser"
# "about 10 s" on an idle laptop. Our 2-core CI machines run the same cells two to three times slower
# (benchmarks/README.md, "Test suite time"): there a seed cell's imports and model load take 11-14 s.
SLOW_CELL_SECONDS = 30
MIN_FIGURE_SCALE = 0.9
RUN_TIMEOUT_S = 600
PLAIN_WIDGET = re.compile(r"^(interactive|VBox|HBox|IntSlider|SelectionSlider|Dropdown|Text|Output|FloatProgress)\(")
TQDM_BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d+")


pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not browser_test_can_run(), reason="no Chromium or no Playwright: nbval runs the "
                                 "tutorials instead (python3 dev.py test installs Debian's chromium when it can)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running JupyterLab: its address, token and the folder it serves."""

    def __init__(self, url: str, token: str, folder: Path):
        self.url, self.token, self.folder = url, token, folder

    def page_of(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?reset&token={self.token}"  # reset: this notebook's tab alone

    def shut_down_kernels(self) -> None:
        """End every session, so a finished notebook's kernel leaves the CPU and memory to the next."""
        api = f"{self.url}/api/sessions"
        with urllib.request.urlopen(f"{api}?token={self.token}", timeout=30) as response:
            sessions = json.load(response)
        for session in sessions:
            request = urllib.request.Request(f"{api}/{session['id']}?token={self.token}", method="DELETE")
            urllib.request.urlopen(request, timeout=30).close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving copies of the tutorials on a free local port."""
    folder = tmp_path_factory.mktemp("lab")
    for notebook in TUTORIALS:
        shutil.copy(notebook, folder)
    settings = folder / ".settings" / "@jupyterlab"
    for extension, name, values in (("notebook-extension", "tracker", {"recordTiming": True}),
                                    ("apputils-extension", "notification", {"fetchNews": "false"})):  # no news popup
        (settings / extension).mkdir(parents=True)
        (settings / extension / f"{name}.jupyterlab-settings").write_text(json.dumps(values))
    port, token = free_port(), "fireflow-edu-browser-test"
    env = {**os.environ, "FIREFLOW_EDU_FAST": "1", "JUPYTERLAB_SETTINGS_DIR": str(folder / ".settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(folder / ".workspaces")}  # the user's open tabs stay theirs
    log = open(folder / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--allow-root",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(folder / 'jupyterlab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield Lab(url, token, folder)
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def poll(page, check, timeout_s: float, every_ms: int = 250):
    """``check()``'s first truthy value, asked every ``every_ms`` until ``timeout_s`` has passed; None if none."""
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        if time.monotonic() > deadline:
            return None
        page.wait_for_timeout(every_ms)
    return value


def run_all_cells(page, timeout_s: float) -> list[str]:
    """Run > Run All Cells, wait until no cell is queued or running; the cells that never ran (after an error)."""
    page.click(".lm-MenuBar-itemLabel >> text=Run")
    page.click(".lm-Menu-itemLabel >> text='Run All Cells'")
    running = page.locator(".jp-CodeCell .jp-InputPrompt", has_text="[*]")
    page.wait_for_timeout(500)
    if poll(page, lambda: not running.count(), timeout_s) is None:
        pytest.fail(f"cells still running after {timeout_s} s")
    page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=60_000)
    never = page.locator(".jp-CodeCell .jp-InputPrompt", has_text="[ ]").count()
    return [f"{never} code cells never ran"] if never else []


def save_from_file_menu(page, path: Path, timeout_s: float = 30):
    """File > Save, then the notebook as saved once it holds run cells (None if it never does)."""
    page.click(".lm-MenuBar-itemLabel >> text=File")
    page.click(".lm-Menu-itemLabel >> text=/^Save( Notebook)?$/")

    def saved_with_run_cells():
        try:
            saved = nbformat.read(path, as_version=4)
        except (ValueError, OSError):  # caught halfway through the write
            return None
        return saved if any(c.get("execution_count") for c in saved.cells if c.cell_type == "code") else None

    return poll(page, saved_with_run_cells, timeout_s)


def errors(notebook) -> list[str]:
    return [f"cell {i}: {o['ename']}: {o['evalue']}" for i, cell in enumerate(notebook.cells)
            for o in cell.get("outputs", []) if o["output_type"] == "error"]


def cell_seconds(cell) -> float | None:
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    return (datetime.fromisoformat(end.replace("Z", "+00:00")) -
            datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()


def shows_progress(cell) -> bool:
    """A tqdm text bar (``42%|####  | 21/50``) among the cell's outputs."""
    return any(TQDM_BAR.search(o.get("text", "")) for o in cell.get("outputs", []) if o["output_type"] == "stream")


def figure_source(interact) -> str:
    image = interact.locator(".widget-output img").first
    image.wait_for(timeout=120_000)
    return image.get_attribute("src")


def wait_for_redraw(interact, before: str, timeout_s: float = 120) -> bool:
    images = interact.locator(".widget-output img")

    def redrawn():
        return images.count() and images.first.get_attribute("src") != before

    return bool(poll(interact.page, redrawn, timeout_s, every_ms=500))


def check_interactive_figures(page) -> list[str]:
    """Move each interactive figure's first slider (and type into its caption box); what failed to redraw."""
    failures = []
    interacts = page.locator(".widget-interact")
    for k in range(interacts.count()):
        interact = interacts.nth(k)
        before = figure_source(interact)
        handle = interact.locator(".noUi-handle").first
        handle.focus()
        handle.press("ArrowRight")
        if not wait_for_redraw(interact, before):
            failures.append(f"interactive figure {k}: no redraw after its slider moved")
            continue
        captions = interact.locator(".widget-text input")
        if captions.count():
            box, before = captions.first, figure_source(interact)
            box.fill("a red circle on a white background")
            if wait_for_redraw(interact, before, timeout_s=3):
                failures.append(f"interactive figure {k}: redrew while the caption was typed, before Enter")
            box.press("Enter")
            if not wait_for_redraw(interact, before):
                failures.append(f"interactive figure {k}: no redraw after Enter in the caption box")
    return failures


@pytest.mark.parametrize("notebook", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_in_jupyterlab(notebook, lab, browser):
    shots = SCREENSHOTS / notebook.stem
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        started = time.monotonic()
        page.goto(lab.page_of(notebook.name))
        page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=120_000)
        problems = run_all_cells(page, RUN_TIMEOUT_S)
        seconds = time.monotonic() - started
        problems += check_interactive_figures(page)
        saved = save_from_file_menu(page, lab.folder / notebook.name)
        if saved is None:
            problems.append("the saved notebook holds no run cells: saving from the File menu failed")
            saved = nbformat.read(lab.folder / notebook.name, as_version=4)
        problems += errors(saved)
        if page.locator("text=Error displaying widget").count():
            problems.append("'Error displaying widget' on the page")
        plain = [t for t in page.locator(".jp-OutputArea-output[data-mime-type='text/plain']").all_inner_texts()
                 if PLAIN_WIDGET.match(t.strip())]
        problems += [f"a widget shown as text: {t[:60]}" for t in plain]
        timing = [(i, cell_seconds(c)) for i, c in enumerate(saved.cells) if c.cell_type == "code"]
        problems += [f"cell {i} ran {s:.0f} s without a progress bar" for i, s in timing
                     if s is not None and s > SLOW_CELL_SECONDS and not shows_progress(saved.cells[i])]
        figures = page.locator(".jp-OutputArea-output img")
        for k in range(figures.count()):
            figure = figures.nth(k)
            figure.scroll_into_view_if_needed()
            figure.screenshot(path=str(shots / f"figure_{k:02d}.png"))
            shown, natural = figure.evaluate("img => [img.clientWidth, img.naturalWidth]")
            if natural and shown / natural < MIN_FIGURE_SCALE:
                problems.append(f"figure {k} shown at {shown / natural:.0%} of its size ({natural} px wide): its "
                                "text shrinks with it; make it narrower")
        shutil.copy(lab.folder / notebook.name, shots / notebook.name)
        (shots / "report.json").write_text(json.dumps(
            {"seconds": round(seconds, 1), "cell_seconds": {i: s for i, s in timing if s is not None}}, indent=1))
        assert not problems, f"{notebook.name} in JupyterLab:\n  " + "\n  ".join(problems)
    finally:
        page.close()
        lab.shut_down_kernels()
