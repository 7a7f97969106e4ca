"""fireflow_edu: learn and use FireFlow, the fast second-order solver for rectified flows.

Time convention for the whole package (FLUX's)
----------------------------------------------
t = 1 is noise and t = 0 is data: x_t = (1 - t) x_data + t noise, and a velocity
field returns v(x, t) = dx/dt (ideally noise - x_data). Sampling integrates a
grid from 1 down to 0; inversion integrates the reversed grid, 0 up to 1, with
the same solver code. The 2D toy names its source (noise, t = 1) pi0 and its
target (data, t = 0) pi1, as in the paper's Figure 2.

Start with :func:`fireflow_edu.solvers.solve` and the notebooks.

Import rule: lower layers never import higher ones. From the bottom: the core (``solvers``,
``schedules``, ``fields``, ``config``, ``reporting``, ``timing``, ``lazy``); analysis (``analysis``,
``plots``, ``toy``); the family-neutral layer (``editing``: the public editing API, the model boundary and
its registry, attention features, images, loading, metrics, batch runs, sharding; ``grading``); the model
families (``flux``, ``sd3``, ``mini``) with ``piebench`` beside them; commands (``*/commands.py``, ``models``,
the models a command can name, and ``cli``).
A module may import its own layer or lower ones, a family never imports another (``mini`` is a FLUX and may
use ``flux``), and heavy third-party libraries (torch, diffusers, matplotlib) are imported where they are
used, so ``import fireflow_edu`` and ``python -m fireflow_edu --help`` stay instant. ``tests/test_layering.py``
enforces all of it.
"""

from .lazy import lazy_exports

__all__ = ["SOLVERS", "expected_nfe", "flux_schedule", "integrate", "solve", "uniform"]
__getattr__ = lazy_exports(__name__, {
    **{name: "solvers" for name in ("SOLVERS", "expected_nfe", "integrate", "solve")},
    **{name: "schedules" for name in ("flux_schedule", "uniform")},
})
