"""fireflow_edu: learn and use FireFlow, the fast second-order solver for rectified flows.

Time convention for the whole package (FLUX's)
----------------------------------------------
t = 1 is noise and t = 0 is data: x_t = (1 - t) x_data + t noise, and a velocity
field returns v(x, t) = dx/dt (ideally noise - x_data). Sampling integrates a
grid from 1 down to 0; inversion integrates the reversed grid, 0 up to 1, with
the same solver code. The 2D toy names its source (noise, t = 1) pi0 and its
target (data, t = 0) pi1, as in the paper's Figure 2.

Start with :func:`fireflow_edu.solvers.solve` and the notebooks.
"""

from .schedules import flux_schedule, uniform
from .solvers import SOLVERS, expected_nfe, integrate, solve

__all__ = ["SOLVERS", "expected_nfe", "flux_schedule", "integrate", "solve", "uniform"]


def __getattr__(name):
    # diffusers resolves a saved pipeline component by looking its class up on the top-level package
    # ("fireflow_edu", "PixelShuffleVAE" in model_index.json); imported lazily to keep diffusers optional.
    if name == "PixelShuffleVAE":
        from .mini.vae import PixelShuffleVAE

        return PixelShuffleVAE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
