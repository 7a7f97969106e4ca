"""What runs inside a submission's kernel after the student's cells: the student's functions on fresh inputs.

The grader sends this file's source with a request (JSON: the exercises, each with inputs it drew for this
run) and reads back one printed line, ``FIREFLOW_PROBE_RESULT {json}``: what each function returned and how
many times it called the velocity. Nothing here judges; expected values are computed in the grader's own
process (:mod:`fireflow_edu.grading.judge`), so code the student patched in the kernel cannot change a verdict.
The source is self-contained (standard library and torch only, no ``fireflow_edu`` import): the package's
modules inside the kernel are the student's to patch. The grader imports the same definitions
(:class:`ProbeField`, :func:`run_step`) to compute what the reference returns on the same inputs.
"""

import json
import math

import torch

MARKER = "FIREFLOW_PROBE_RESULT "


class ProbeField:
    """v(x, t) = A x + b cos(w t) + c sin(x) for x [B, D]: smooth, nonlinear, its parameters drawn per run.

    ``calls`` counts evaluations (the NFE of whatever integrates it).
    """

    def __init__(self, a, b, c, w):
        self.a = torch.tensor(a, dtype=torch.float64)
        self.b = torch.tensor(b, dtype=torch.float64)
        self.c, self.w = float(c), float(w)
        self.calls = 0

    def __call__(self, x, t):
        self.calls += 1
        return x @ self.a.T + self.b * math.cos(self.w * float(t)) + self.c * torch.sin(x)


def run_step(step, field, x0, grid):
    """One pass of ``step(v, x, t, h, cache)`` over ``grid`` (fresh cache): the state and NFE after each step."""
    cache, x, states, calls = {}, x0.clone(), [], []
    for t, t_next in zip(grid[:-1], grid[1:]):
        before = field.calls
        x = step(field, x, float(t), float(t_next) - float(t), cache)
        calls.append(field.calls - before)
        states.append(torch.as_tensor(x, dtype=torch.float64).tolist())
    return {"states": states, "calls": calls}


def fireflow_given_step(v, x, t, h, cache):
    """The step handed to a student's ``round_trip`` (FireFlow's update, written out here)."""
    start = cache["v"] if "v" in cache else v(x, t)
    cache["v"] = v(x + h / 2 * start, t + h / 2)
    return x + h * cache["v"]


def probe_step(function, request):
    field = ProbeField(**request["field"])
    x0 = torch.tensor(request["x0"], dtype=torch.float64)
    return {"passes": [run_step(function, field, x0, grid) for grid in request["grids"]]}


def probe_fit_order(function, request):
    return {"slopes": [float(function(list(dts), list(errors))) for dts, errors in request["cases"]]}


def probe_round_trip(function, request):
    runs = []
    for steps in request["steps"]:
        field = ProbeField(**request["field"])
        x_back, nfe = function(fireflow_given_step, field, torch.tensor(request["x0"], dtype=torch.float64), steps)
        runs.append({"x": torch.as_tensor(x_back, dtype=torch.float64).tolist(), "nfe": int(nfe),
                     "calls": field.calls})
    return {"runs": runs}


PROBES = {"step": probe_step, "fit_order": probe_fit_order, "round_trip": probe_round_trip}


def main(namespace, request_json):
    """Call each requested function found in ``namespace`` (the notebook's globals); print the results."""
    results = {}
    for item in json.loads(request_json)["exercises"]:
        function = namespace.get(item["function"])
        try:
            if not callable(function):
                raise NameError(f"{item['function']} is not defined (run its cell without errors)")
            results[item["label"]] = {"module": str(getattr(function, "__module__", "")),
                                      **PROBES[item["kind"]](function, item)}
        except Exception as error:  # the student's function failed on these inputs: reported, judged as such
            message = f"{type(error).__name__}: {error}".splitlines()[0] if str(error) else type(error).__name__
            results[item["label"]] = {"error": message}
    print(MARKER + json.dumps(results))
