import importlib.util
from pathlib import Path

import pytest
import torch

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


@pytest.fixture(scope="module")
def browser():
    """Chromium driven by Playwright, one per test module (tests/test_browser.py, tests/test_docs.py)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield instance
        instance.close()


def pytest_collection_modifyitems(config, items):
    """A tutorial the browser test runs in JupyterLab is not run a second time by nbval (the browser test fails
    on any error output, as nbval-lax does); without a browser, or when only notebooks were collected, nbval runs it."""
    if not browser_test_can_run():
        return
    in_browser = {item.callspec.params["notebook"].name for item in items
                  if item.path.name == "test_browser.py" and hasattr(item, "callspec")}
    for item in items:
        if item.path.suffix == ".ipynb" and item.path.name in in_browser:
            item.add_marker(pytest.mark.skip(reason="run in JupyterLab by tests/test_browser.py"))


@pytest.fixture(scope="module")
def flux():
    """The tiny random-weight FluxPipeline (built offline), one per test module: tests may hook or move it."""
    from fireflow_edu.flux import tiny_pipeline

    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def sd3():
    """The tiny random-weight StableDiffusion3Pipeline, one per test module."""
    from fireflow_edu.sd3 import tiny_sd3_pipeline

    return tiny_sd3_pipeline()


@pytest.fixture(scope="module")
def mini():
    """The shipped mini FLUX (data/mini_flux), one per test module."""
    from fireflow_edu.mini.model import load_mini_pipeline

    return load_mini_pipeline()


@pytest.fixture(scope="session")
def toy_flows():
    """1-RF and 2-RF trained once for the whole test session: the same setting as notebooks 02 and 03 in fast mode,
    so one training (cached) serves all three."""
    from fireflow_edu.toy.experiment import train_toy_flows

    return train_toy_flows(iterations=2000, reflow_pairs=10_000, seed=0, progress=False)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
