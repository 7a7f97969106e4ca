import pytest
import torch


@pytest.fixture(scope="session")
def toy_flows():
    """1-RF and 2-RF trained once for the whole test session (about 15 s)."""
    from fireflow_edu.toy.experiment import train_toy_flows

    return train_toy_flows(iterations=2000, reflow_pairs=10_000, seed=0, progress=False)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
