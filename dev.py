#!/usr/bin/env python3
"""Set up the project's environment when needed, then run the CPU demo, the tests or the site's build.

    python3 dev.py demo [demo options]     # Figure 2 and its table in out/demo (default options)
    python3 dev.py test [pytest options]   # unit tests and every notebook, in fast mode
    python3 dev.py test --quick [options]  # the unit tests alone: no notebook, browser, docs or slow test
    python3 dev.py docs [--fast] [options] # the site in docs/_build/html (full mode; --fast: docs/_build/fast)

Each command creates ``.venv`` beside this file if it is missing, installs ``requirements.txt``
and the package (editable) into it when either file changed since the last install, and runs in
it. A second run skips the install. ``test`` (not ``--quick``) also installs Debian's ``chromium`` with
apt-get when no Chromium is on PATH and apt-get can run (as root), for the browser tests of the tutorials and
the site; ``test``, quick or not, installs Debian's ``bubblewrap`` the same way when ``bwrap`` is missing (the
grader's sandbox). Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / "fireflow_edu-installed.sha256"
MIN_PYTHON = (3, 10)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
COMMANDS = {
    "demo": ["-m", "fireflow_edu", "demo"],
    "test": ["-m", "pytest"],
    "docs": ["-m", "sphinx", "-b", "html"],
}
# markers registered in pyproject.toml; the notebooks are left out by collecting tests/ alone (pyproject's testpaths
# also names notebooks/, and --ignore cannot take out a folder testpaths names); paths given after --quick still win
QUICK = ["-m", "not slow and not browser", "-o", "testpaths=tests"]


def fail(message: str) -> None:
    print(f"dev.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def install_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_environment() -> Path:
    """The venv's Python, created and brought up to date with requirements.txt and the package."""
    if not venv_python().exists():
        print(f"dev.py: creating {VENV}", file=sys.stderr)
        try:
            venv.create(VENV, with_pip=True)
        except Exception as error:  # ensurepip missing (Debian's python3-venv), unwritable folder...
            fail(f"could not create the virtual environment {VENV}: {error}\n"
                 "  On Debian/Ubuntu install python3-venv; or make one yourself and run "
                 "`pip install -r requirements.txt -e .` in it.")
    python = venv_python()
    fingerprint = install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return python
    print("dev.py: installing requirements.txt and the package into .venv", file=sys.stderr)
    install = [str(python), "-m", "pip", "install", "--disable-pip-version-check",
               "-r", "requirements.txt", "-e", "."]
    if subprocess.call(install, cwd=ROOT) != 0:
        fail("installing requirements.txt failed (pip's message is above); fix it and run again.")
    STAMP.write_text(fingerprint)
    return python


def chromium() -> str | None:
    """A Chromium-based browser on PATH, for tests/test_browser.py (tests/conftest.py asks here too)."""
    return next(filter(None, map(shutil.which, BROWSERS)), None)


def apt_install(package: str, without: str) -> None:
    """Debian's ``package`` installed with apt-get when apt-get can run (as root); otherwise, or when it fails,
    one line saying what happens ``without`` it."""
    if shutil.which("apt-get") is None or getattr(os, "geteuid", lambda: -1)() != 0:
        print(f"dev.py: no {package} here and no root apt-get to install it: {without} (install {package} "
              "yourself)", file=sys.stderr)
        return
    print(f"dev.py: installing Debian's {package}", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        if subprocess.call(command, cwd=ROOT, env=env) != 0:
            print(f"dev.py: `{' '.join(command)}` failed (its message is above): {without}", file=sys.stderr)
            return


def ensure_browser() -> None:
    """Debian's Chromium for tests/test_browser.py, installed with apt-get when missing and possible; without
    it that test is skipped and nbval runs the tutorials instead."""
    if chromium() is None:
        apt_install("chromium", "the browser test will be skipped")


def ensure_sandbox() -> None:
    """Debian's bubblewrap (``bwrap``), the sandbox ``grade`` runs each submission's kernel in
    (fireflow_edu/grading/sandbox.py), installed with apt-get when missing and possible; without it the
    grading test of escaping submissions is skipped and ``grade`` marks every row as graded without one."""
    if shutil.which("bwrap") is None:
        apt_install("bubblewrap", "the sandbox test will be skipped and grade runs without a sandbox")


def docs_arguments(rest: list[str], env: dict[str, str]) -> list[str]:
    """sphinx-build's arguments for ``dev.py docs``: full mode into ``docs/_build``, or with ``--fast`` fast mode
    into ``docs/_build/fast``, each with its own execution cache (``docs/conf.py``)."""
    fast = "--fast" in rest
    env["FIREFLOW_EDU_FAST"] = "1" if fast else "0"
    build = "docs/_build/fast" if fast else "docs/_build"
    return [*(arg for arg in rest if arg != "--fast"), "docs", f"{build}/html", "-d", f"{build}/doctrees"]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        fail(f"usage: python3 dev.py {{{'|'.join(COMMANDS)}}} [options passed on]")
    if sys.version_info < MIN_PYTHON:
        fail(f"Python {'.'.join(map(str, MIN_PYTHON))} or newer is needed; this is "
             f"{sys.version.split()[0]} ({sys.executable}).")
    command, rest = argv[0], argv[1:]
    python = ensure_environment()
    env = dict(os.environ)
    if command == "test":
        env["FIREFLOW_EDU_FAST"] = "1"
        ensure_sandbox()
        if "--quick" in rest:
            rest = [*QUICK, *(arg for arg in rest if arg != "--quick")]
        else:
            ensure_browser()
    if command == "docs":
        rest = docs_arguments(rest, env)
    if command == "demo" and "--out" not in rest:
        rest = ["--out", "out/demo", *rest]
    return subprocess.call([str(python), *COMMANDS[command], *rest], cwd=ROOT, env=env)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
