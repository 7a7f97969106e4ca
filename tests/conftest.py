import importlib.util
import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two workers on two cores: OpenMP threads that wait must sleep, not spin, or each worker's torch threads slow
    # the other's several times over; set before torch loads its OpenMP runtime (kernels and subprocesses inherit it)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

DEV = Path(__file__).resolve().parent.parent / "dev.py"


def load_dev():
    """A fresh copy of dev.py, the README's commands (standard library only, run before any install, so a file
    beside the package rather than a module of it)."""
    spec = importlib.util.spec_from_file_location("dev", DEV)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chromium() -> str | None:
    """The browser dev.py installs and looks for, for tests/test_browser.py."""
    return load_dev().chromium()


def browser_test_can_run() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return chromium() is not None


@pytest.hookimpl(tryfirst=True)  # the groups are marked before pytest-xdist reads them
def pytest_collection_modifyitems(config, items):
    """What runs together on one worker (``--dist loadgroup``, in pyproject.toml): a module's tests and a notebook's
    cells (they share fixtures or a kernel), while each tutorial the browser test runs is a group of its own, so the
    longest tests spread over the workers.

    A tutorial the browser test runs in JupyterLab is not run a second time by nbval (the browser test fails on any
    error output, as nbval-lax does); without a browser, or when only notebooks were collected, nbval runs it."""
    in_browser = {item: item.callspec.params["notebook"].name for item in items
                  if item.path.name == "test_browser.py" and hasattr(item, "callspec")}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(in_browser.get(item, str(item.path))))
    if not browser_test_can_run():
        return
    for item in items:
        if item.path.suffix == ".ipynb" and item.path.name in in_browser.values():
            item.add_marker(pytest.mark.skip(reason="run in JupyterLab by tests/test_browser.py"))


@pytest.fixture(scope="session")
def toy_flows():
    """1-RF and 2-RF trained once for the whole test session: the same setting as notebooks 02 and 03 in fast mode,
    so one training (cached) serves all three."""
    from fireflow_edu.toy.experiment import train_toy_flows

    return train_toy_flows(iterations=2000, reflow_pairs=10_000, seed=0, progress=False)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
