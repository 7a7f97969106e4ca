"""dev.py, the README's set-up-and-run commands: the environment is made once and reinstalled only on change."""

import runpy
import sys
from pathlib import Path

import pytest
from conftest import load_dev


@pytest.fixture
def dev(tmp_path, monkeypatch):
    module = load_dev()
    for name in ("requirements.txt", "pyproject.toml"):
        (tmp_path / name).write_text(f"{name} v1\n")
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "VENV", tmp_path / ".venv")
    monkeypatch.setattr(module, "STAMP", tmp_path / ".venv" / "stamp")
    module.calls, module.fast = [], []

    def create(path, with_pip):
        module.venv_python().parent.mkdir(parents=True)
        module.venv_python().write_text("")
        module.calls.append("venv")

    def call(command, cwd, env=None):
        module.calls.append("pip" if "pip" in command else " ".join(command[1:]))
        module.fast.append(env and env.get("FIREFLOW_EDU_FAST"))
        return 0

    monkeypatch.setattr(module.venv, "create", create)
    monkeypatch.setattr(module.subprocess, "call", call)
    monkeypatch.setattr(module, "ensure_browser", lambda: module.calls.append("browser"))
    monkeypatch.setattr(module, "ensure_sandbox", lambda: None)
    return module


def test_first_run_sets_up_later_runs_reuse_until_requirements_change(dev, tmp_path):
    assert dev.main(["test", "-x"]) == 0
    assert dev.calls == ["venv", "pip", "browser", "-m pytest -x"]
    dev.calls.clear()
    assert dev.main(["demo"]) == 0
    assert dev.calls == ["-m fireflow_edu demo --out out/demo"]  # nothing installed again
    (tmp_path / "requirements.txt").write_text("requirements.txt v2\n")
    dev.calls.clear()
    assert dev.main(["demo", "--fast", "--out", "x"]) == 0
    assert dev.calls == ["pip", "-m fireflow_edu demo --fast --out x"]


def test_quick_tests_leave_out_the_slow_the_browser_and_the_notebooks(dev):
    assert dev.main(["test", "--quick", "-x"]) == 0
    assert dev.calls == ["venv", "pip", "-m pytest -m not slow and not browser -o testpaths=tests -x"]  # no Chromium
    assert dev.fast[-1] == "1"


def test_docs_build_full_mode_into_docs_build_and_fast_mode_beside_it(dev):
    assert dev.main(["docs"]) == 0
    assert dev.calls[-1] == "-m sphinx -b html docs docs/_build/html -d docs/_build/doctrees"
    assert dev.fast[-1] == "0"  # full mode even where the shell exported fast mode
    assert dev.main(["docs", "--fast", "-E"]) == 0
    assert dev.calls[-1] == "-m sphinx -b html -E docs docs/_build/fast/html -d docs/_build/fast/doctrees"
    assert dev.fast[-1] == "1"


def test_each_mode_keeps_its_execution_cache_beside_its_build(monkeypatch):
    """The execution cache's key (a notebook's code cells) does not see the mode: a full build must never be
    served a fast run's outputs."""
    docs = Path(__file__).resolve().parent.parent / "docs"
    caches = {}
    for fast in ("0", "1"):
        monkeypatch.setenv("FIREFLOW_EDU_FAST", fast)
        caches[fast] = runpy.run_path(str(docs / "conf.py"))["nb_execution_cache_path"]
    assert caches == {"0": str(docs / "_build" / "jupyter_cache"), "1": str(docs / "_build" / "fast" / "jupyter_cache")}


def test_bad_usage_and_old_python_are_clear(dev, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        dev.main(["deploy"])
    assert "usage: python3 dev.py {demo|test|docs}" in capsys.readouterr().err
    monkeypatch.setattr(sys, "version_info", (3, 8, 0))
    with pytest.raises(SystemExit):
        dev.main(["test"])
    assert "Python 3.10 or newer is needed" in capsys.readouterr().err


def test_a_failed_install_is_retried_next_time(dev, monkeypatch, capsys):
    monkeypatch.setattr(dev.subprocess, "call", lambda command, cwd, env=None: 1)
    with pytest.raises(SystemExit):
        dev.main(["test"])
    assert "installing requirements.txt failed" in capsys.readouterr().err
    assert not dev.STAMP.exists()


def test_bubblewrap_is_looked_for_by_every_test_run_quick_or_not(dev, monkeypatch):
    monkeypatch.setattr(dev, "ensure_sandbox", lambda: dev.calls.append("sandbox"))
    assert dev.main(["test", "--quick"]) == 0 and dev.main(["test"]) == 0 and dev.main(["demo"]) == 0
    assert dev.calls.count("sandbox") == 2


@pytest.mark.parametrize("ensure, package, without", [
    ("ensure_browser", "chromium", "browser test will be skipped"),
    ("ensure_sandbox", "bubblewrap", "grade runs without a sandbox"),
])
def test_debian_package_is_installed_with_apt_get_only_when_missing_and_possible(ensure, package, without,
                                                                                  monkeypatch, capsys):
    module = load_dev()
    commands = []
    monkeypatch.setattr(module.subprocess, "call", lambda command, cwd, env: commands.append(command) or 0)
    monkeypatch.setattr(module.os, "geteuid", lambda: 0, raising=False)
    monkeypatch.setattr(module.shutil, "which", lambda name: f"/usr/bin/{name}" if name != "apt-get" else None)
    getattr(module, ensure)()
    assert commands == []  # there already
    monkeypatch.setattr(module.shutil, "which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None)
    getattr(module, ensure)()
    assert commands == [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]]
    commands.clear()
    monkeypatch.setattr(module.os, "geteuid", lambda: 1000, raising=False)
    getattr(module, ensure)()
    assert commands == [] and without in capsys.readouterr().err
