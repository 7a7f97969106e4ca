"""The grader's side of a probe: fresh secret inputs, the reference's answers on them, and the verdicts.

Everything here runs in the grader's own process. :func:`draw` makes the inputs of one exercise for one
submission (a velocity field with random parameters, states, non-uniform grids in both time directions,
step counts, power laws); :func:`verdict` compares what the student's function returned on them
(:mod:`fireflow_edu.grading.probe`) with what the package's reference returns, and names what differs:
the values, the NFE per step, the time direction, the observed order. :func:`borrowed_code` reads the
notebook's source for code that calls the package's own steps instead of the student's. Exercises on a trained
model (assignment D) are drawn and judged by their model family's module, imported on use by the name
:data:`~fireflow_edu.grading.exercises.MODEL_JUDGES` gives it.
"""

from __future__ import annotations

import ast
from importlib import import_module

import numpy as np
import torch

from ..analysis import fit_slope
from ..schedules import uniform
from ..solvers import SOLVERS, integrate
from .exercises import MODEL_JUDGES, Exercise
from .probe import ProbeField, fireflow_given_step, run_step

ORDER_STEPS = (8, 16, 32, 64)
TOLERANCE = 1e-9
# the package's reference steps and registry: a submission that imports or looks them up borrows the answer
REFERENCE_NAMES = {"euler_step", "midpoint_step", "rf_solver_step", "fireflow_step", "SOLVERS", "get_solver"}
# ways to reach them without naming them, which none of the exercises needs
DYNAMIC = {"__import__", "importlib", "eval", "exec", "compile", "getattr", "globals", "vars", "__dict__",
           "modules", "__code__"}
# the package's own answers to assignment D: its solver loop and editing calls, its feature store, PIE-Bench's metric
EDITING_NAMES = {"integrate", "solve", "solve_pass", "invert", "reconstruct", "edit", "edit_inversion"}
FEATURE_NAMES = {"AttentionFeatures", "feature_hooks", "single_block_hooks"}
METRIC_NAMES = {"region_metrics", "PieBenchScorer"}
GUARDED = {"step": REFERENCE_NAMES, "mini_round_trip": REFERENCE_NAMES | EDITING_NAMES,
           "mini_v_injection": REFERENCE_NAMES | EDITING_NAMES | FEATURE_NAMES, "background_psnr": METRIC_NAMES}


def _field(rng: np.random.Generator, dim: int) -> dict:
    a = rng.normal(0, 0.6, (dim, dim))
    return {"a": (a - a.T - 0.3 * np.eye(dim)).tolist(), "b": rng.normal(0, 1, dim).tolist(),
            "c": float(rng.uniform(0.2, 0.8)), "w": float(rng.uniform(1, 4))}


def _random_grid(rng: np.random.Generator, increasing: bool) -> list[float]:
    inner = np.sort(rng.uniform(0.02, 0.98, int(rng.integers(4, 11))))
    grid = [0.0, *inner.tolist(), 1.0]
    return grid if increasing else grid[::-1]


def _model_judge(exercise: Exercise):
    try:
        return import_module(MODEL_JUDGES[exercise.model])
    except ImportError as error:  # the model's libraries are an extra, as for the commands that run it
        raise ValueError(f"{exercise.label} runs on the {exercise.model} model, whose libraries are not installed: "
                         f"pip install 'fireflow_edu[flux,grading]' ({error})") from error


def draw(exercise: Exercise, rng: np.random.Generator) -> dict:
    """The request item for ``exercise``: the inputs its probe gets, drawn fresh for this submission."""
    item = {"label": exercise.label, "function": exercise.function, "kind": exercise.kind}
    if exercise.model:
        return {**item, **_model_judge(exercise).draw(exercise, rng)}
    dim = int(rng.integers(2, 5))
    if exercise.kind == "step":
        # uniform sampling grids measure the order; random grids both ways check every value and direction
        grids = [uniform(n).tolist() for n in ORDER_STEPS] + [_random_grid(rng, False), _random_grid(rng, True)]
        return {**item, "field": _field(rng, dim), "x0": rng.normal(0, 1, (6, dim)).tolist(), "grids": grids}
    if exercise.kind == "fit_order":
        cases = []
        for _ in range(3):
            dts = 0.2 * rng.uniform(0.4, 0.7) ** np.arange(int(rng.integers(4, 7)))
            errors = rng.uniform(0.1, 10) * dts ** rng.uniform(0.5, 3) * np.exp(rng.normal(0, 0.05, len(dts)))
            cases.append([dts.tolist(), errors.tolist()])
        return {**item, "cases": cases}
    if exercise.kind == "round_trip":
        steps = [int(s) for s in rng.integers(4, 13, 2)]
        return {**item, "field": _field(rng, dim), "x0": rng.normal(0, 1, (6, dim)).tolist(), "steps": steps}
    raise ValueError(f"unknown exercise kind {exercise.kind!r}")


def _largest_difference(a, b) -> float:
    a, b = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape {tuple(a.shape)} where {tuple(b.shape)} was expected")
    return float((a - b).abs().max() / (1 + b.abs().max()))


def _observed_order(item: dict, passes: list[dict]) -> float:
    """Slope of the final-state error against 1/N on the uniform passes, against a fine reference solution."""
    field, x0 = ProbeField(**item["field"]), torch.tensor(item["x0"], dtype=torch.float64)
    exact = integrate(field, x0, uniform(4096), "midpoint").x
    errors = [max(_largest_difference(p["states"][-1], exact.tolist()), 1e-300) for p in passes[:len(ORDER_STEPS)]]
    return fit_slope([1 / n for n in ORDER_STEPS], errors)


def _step_verdict(exercise: Exercise, item: dict, answer: dict) -> str | None:
    field, x0 = ProbeField(**item["field"]), torch.tensor(item["x0"], dtype=torch.float64)
    reference = [run_step(SOLVERS[exercise.method].step, field, x0, grid) for grid in item["grids"]]
    passes = answer["passes"]
    wrong = [i for i, (mine, ref) in enumerate(zip(passes, reference))
             if _largest_difference(mine["states"], ref["states"]) > TOLERANCE]
    if wrong:
        inverting = [item["grids"][i][-1] > item["grids"][i][0] for i in range(len(reference))]
        if len({inverting[i] for i in wrong}) == 1 and len(wrong) < len(reference):
            right, bad = ("sampling (t: 1 -> 0)", "inverting (t: 0 -> 1)") if inverting[wrong[0]] else \
                         ("inverting (t: 0 -> 1)", "sampling (t: 1 -> 0)")
            return (f"on fresh inputs your {exercise.function} is right when {right} but not when {bad}: use the "
                    "signed step h as given, never abs(h) or a fixed sign")
        order, expected = _observed_order(item, passes), SOLVERS[exercise.method].order
        return (f"on fresh inputs your {exercise.function} differs from the {exercise.method} update "
                f"(observed order {order:.2f}, {exercise.method} has order {expected})")
    for mine, ref in zip(passes, reference):
        if mine["calls"] != ref["calls"]:
            return (f"your {exercise.function} gives the right values but evaluates the velocity "
                    f"{sum(mine['calls'])} times over a pass of {len(ref['calls'])} steps where {exercise.method} "
                    f"needs {sum(ref['calls'])}")
    return None


def _fit_order_verdict(exercise: Exercise, item: dict, answer: dict) -> str | None:
    for (dts, errors), slope in zip(item["cases"], answer["slopes"]):
        expected = float(np.polyfit(np.log(dts), np.log(errors), 1)[0])
        if not abs(slope - expected) <= 1e-6:
            return f"on fresh data your fit_order gave {slope:.4f} where the log-log least-squares slope is {expected:.4f}"
    return None


def _round_trip_verdict(exercise: Exercise, item: dict, answer: dict) -> str | None:
    for steps, run in zip(item["steps"], answer["runs"]):
        field, x0 = ProbeField(**item["field"]), torch.tensor(item["x0"], dtype=torch.float64)
        inverted = integrate(field, x0, uniform(steps, 0.0, 1.0), fireflow_given_step)
        expected = integrate(field, inverted.x, uniform(steps), fireflow_given_step)
        if _largest_difference(run["x"], expected.x.tolist()) > TOLERANCE:
            return (f"on fresh inputs your round trip with {steps} steps differs from 'invert along "
                    f"uniform({steps}, 0, 1), then regenerate along uniform({steps})'")
        nfe = inverted.nfe + expected.nfe
        if run["nfe"] != nfe or run["calls"] != nfe:
            return f"{steps} FireFlow steps each way cost {nfe} NFE; you reported {run['nfe']} and used {run['calls']}"
    return None


VERDICTS = {"step": _step_verdict, "fit_order": _fit_order_verdict, "round_trip": _round_trip_verdict}


def verdict(exercise: Exercise, item: dict, answer: dict | None) -> str | None:
    """None when the student's answers equal the reference's on the drawn inputs, else why not."""
    if answer is None:
        return "the probe did not run (the notebook stopped before its end)"
    if "error" in answer:
        return f"{exercise.function} failed on the grader's inputs: {answer['error']}"
    if answer["module"].split(".")[0] == "fireflow_edu":
        return f"{exercise.function} is the package's own function ({answer['module']}), not yours"
    try:
        if exercise.model:
            return _model_judge(exercise).verdict(exercise, item, answer)
        return VERDICTS[exercise.kind](exercise, item, answer)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # the answer has the wrong shape or type
        return f"{exercise.function} returned something unexpected on the grader's inputs: {error}"


def borrowed(exercise: Exercise, sources: list[str]) -> str | None:
    """Why ``exercise`` scores zero whatever its answers, because the notebook's code (``sources``, its code
    cells) uses the package's own answer to it (:data:`GUARDED`); None when clean or nothing is guarded."""
    names = GUARDED.get(exercise.kind)
    found = borrowed_code(sources, names) if names else []
    if not found:
        return None
    if exercise.kind == "step":
        return "the notebook borrows the package's steps (" + "; ".join(found) + "): write the update yourself"
    return f"the notebook borrows the package's own code for {exercise.function} (" + "; ".join(found) + \
        "): write it yourself"


def borrowed_code(sources: list[str], names: set[str] = REFERENCE_NAMES) -> list[str]:
    """Why the notebook's code does not count as the student's own: imports or look-ups of the package's
    reference ``names`` (its steps by default), or dynamic code that could reach them without naming them.
    Empty when clean."""
    from IPython.core.inputtransformer2 import TransformerManager

    found = []
    for number, source in enumerate(sources, start=1):
        try:
            tree = ast.parse(TransformerManager().transform_cell(source))
        except SyntaxError:
            continue  # it fails when run, and is judged then
        for node in ast.walk(tree):
            used = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "fireflow_edu":
                used = [alias.name for alias in node.names if alias.name in names | {"*"}]
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                used = [m for m in modules if m.split(".")[0] in DYNAMIC]
            elif isinstance(node, ast.Attribute) and node.attr in names | DYNAMIC:
                used = [node.attr]
            elif isinstance(node, ast.Name) and node.id in DYNAMIC:
                used = [node.id]
            found += [f"code cell {number} uses `{name}`" for name in used]
    return sorted(set(found))
