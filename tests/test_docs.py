"""The tutorials as a site (``docs/conf.py``, ``python3 dev.py docs``): built in fast mode, read in Chromium.

The build (sphinx-build, warnings as errors) takes the tutorials' outputs from the notebooks ``tests/test_browser.py``
ran and saved in ``out/browser/<notebook>/`` earlier in the same test command: each goes into the build's execution
cache when its code cells are the current notebook's, so no tutorial runs twice. Any other notebook (the student
copies; a tutorial whose browser run is missing or older than its code) is executed by the build. Every page is
then opened from a local web server, and the test fails on:

- a page that does not load, a script error on it, or a request of it for a file the site lacks;
- math that MathJax (served by the site itself) did not typeset;
- an internal link whose page or ``#anchor`` does not exist;
- a tutorial page without figures, or short of any image output of its executed notebook, or one not loaded;
- an execution error shown on a tutorial page, or on a student copy's page any error but the
  ``NotImplementedError("Exercise ...")`` an unanswered exercise raises;
- a notebook page whose download link does not give the notebook itself.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import nbformat
import pytest
from conftest import browser_test_can_run

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
STUDENT_COPIES = sorted((ROOT / "fireflow_edu" / "grading" / "assignments").glob("*.ipynb"))
BROWSER_RUNS = ROOT / "out" / "browser"
BUILD_TIMEOUT_S = 1800  # a build with no saved browser run executes every tutorial
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
ELEMENT_ID = re.compile(r'\bid="([^"]+)"')

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not browser_test_can_run(), reason="no Chromium or no Playwright (python3 dev.py "
                                 "test installs Debian's chromium when it can)")]


def code_sources(notebook) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def cache_browser_runs(cache: Path) -> list[str]:
    """Put each tutorial the browser test saved, with code unchanged since, into a MyST-NB execution cache at
    ``cache``: its outputs on the committed notebook, so the cache's key (code cells and their metadata) matches."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    store, cached = get_cache(str(cache)), []
    for path in TUTORIALS:
        saved_path = BROWSER_RUNS / path.stem / path.name
        if not saved_path.exists():
            continue
        notebook, saved = nbformat.read(path, as_version=4), nbformat.read(saved_path, as_version=4)
        if code_sources(notebook) != code_sources(saved):
            continue
        runs = [cell for cell in saved.cells if cell.cell_type == "code"]
        for cell, run in zip((cell for cell in notebook.cells if cell.cell_type == "code"), runs):
            cell.outputs, cell.execution_count = run.outputs, run.execution_count
        store.cache_notebook_bundle(CacheBundleIn(notebook, str(path)), check_validity=False, overwrite=True)
        cached.append(path.name)
    return cached


class Site:
    def __init__(self, build: Path, url: str):
        self.html, self.cache, self.url = build / "html", build / "jupyter_cache", url
        self._ids: dict[Path, set[str]] = {}

    def executed(self, notebook: Path):
        """``notebook`` with the outputs its page was rendered from: the build's execution cache's record of it
        (a KeyError when the build left none). Not ``jupyter_execute/``: MyST-NB writes its copy there without
        outputs for a notebook it takes from the cache, as every tutorial the browser test ran is."""
        from jupyter_cache import get_cache

        return get_cache(str(self.cache)).merge_match_into_notebook(nbformat.read(notebook, as_version=4))[1]

    def pages(self) -> list[Path]:
        return sorted(p for p in self.html.rglob("*.html") if p.relative_to(self.html).parts[0][0] != "_")

    def url_of(self, page: Path) -> str:
        return f"{self.url}/{page.relative_to(self.html).as_posix()}"

    def ids_in(self, page: Path) -> set[str]:
        if page not in self._ids:
            self._ids[page] = set(ELEMENT_ID.findall(page.read_text(encoding="utf-8")))
        return self._ids[page]

    def broken_link(self, href: str) -> str | None:
        """Why a link inside the site leads nowhere (None when it leads somewhere)."""
        address, anchor = urldefrag(href)
        target = self.html / urlparse(address).path.removeprefix(urlparse(self.url).path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            return f"{href}: no such file"
        if anchor and target.suffix == ".html" and anchor not in self.ids_in(target):
            return f"{href}: no #{anchor} on that page"
        return None


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built in fast mode into a temporary folder and served on a free local port."""
    build = tmp_path_factory.mktemp("site")
    cached = cache_browser_runs(build / "jupyter_cache")
    print(f"tutorials from the browser test's runs: {cached or 'none'}")
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
               "-D", f"nb_execution_cache_path={build / 'jupyter_cache'}",
               "docs", str(build / "html"), "-d", str(build / "doctrees")]
    run = subprocess.run(command, cwd=ROOT, env={**os.environ, "FIREFLOW_EDU_FAST": "1"}, capture_output=True,
                         text=True, timeout=BUILD_TIMEOUT_S)
    assert run.returncode == 0, f"the site's build failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(build / "html")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Site(build, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


def open_page(browser, site: Site, page_path: Path):
    """The page loaded with its math typeset; the problems seen on the way (script errors, missing files)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status} for {r.url}"))
    # the site must work offline: anything it would fetch from elsewhere is refused (and nothing may need it)
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(site.url) else route.abort())
    response = page.goto(site.url_of(page_path), wait_until="load")
    if response is None or not response.ok:
        problems.append(f"did not load: {response and response.status}")
    math = page.locator("span.math, div.math")
    if math.count():
        untypeset = "span.math:not(:has(mjx-container)), div.math:not(:has(mjx-container))"
        try:
            page.wait_for_function(f"!document.querySelector({untypeset!r})", timeout=30_000)
        except Exception:  # playwright's TimeoutError
            problems.append(f"{page.locator(untypeset).count()} of {math.count()} formulas not typeset by MathJax")
    return page, problems


def test_every_page_loads_with_its_math_and_links(site, browser):
    pages = site.pages()
    assert len(pages) >= 3 + len(TUTORIALS) + len(STUDENT_COPIES), [p.name for p in pages]
    problems = []
    for path in pages:
        page, found = open_page(browser, site, path)
        try:
            hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
            found += sorted({why for href in hrefs if href.startswith(site.url)
                             for why in [site.broken_link(href)] if why})
        finally:
            page.close()
        problems += [f"{path.relative_to(site.html)}: {p}" for p in found]
    assert not problems, "the site:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("notebook", TUTORIALS + STUDENT_COPIES, ids=lambda p: p.stem)
def test_notebook_page_shows_its_outputs_and_download(notebook, site, browser):
    folder = "tutorials" if notebook in TUTORIALS else "assignments"
    executed = site.executed(notebook)
    images = sum(1 for cell in executed.cells for output in cell.get("outputs", [])
                 if any(kind in output.get("data", {}) for kind in IMAGE_TYPES))
    page, problems = open_page(browser, site, site.html / folder / f"{notebook.stem}.html")
    try:
        shown = page.locator(".cell_output img")
        loaded = page.eval_on_selector_all(".cell_output img", "images => images.filter(i => i.naturalWidth).length")
        if folder == "tutorials" and not images:
            problems.append("the executed tutorial has no figure")
        if shown.count() < images or loaded < shown.count():
            problems.append(f"{images} figures in the executed notebook, {shown.count()} on the page, {loaded} loaded")
        for trace in page.locator(".cell_output .output.traceback").all_inner_texts():
            last = [line for line in trace.splitlines() if line.strip()][-1]
            if folder == "tutorials" or not re.match(r"NotImplementedError: Exercise \w", last):
                problems.append(f"execution error shown: {last}")
        download = page.locator(f"a[href$='_sources/{folder}/{notebook.name}']")
        if not download.count():
            problems.append("no download link to the notebook")
        else:
            body = page.request.get(download.first.evaluate("a => a.href")).body()
            if body != notebook.read_bytes():
                problems.append("the download link gives another file than the notebook")
    finally:
        page.close()
    assert not problems, f"{folder}/{notebook.stem}.html:\n  " + "\n  ".join(problems)
