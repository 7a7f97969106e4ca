"""Self-checks for the assignments: compare a learner's step with the reference and name the mistake.

Each ``check_*`` of assignments A-C runs the learner's function through the package's solver loop on
seeded fields with exact solutions, both time directions, measures its NFE per
step and its order of accuracy, and either prints one ``PASS Exercise ...`` line
or raises ``AssertionError`` with a hint that names the likely mistake.

Assignment D's checks run the learner's FireFlow loop, V-injection edit and background PSNR on the pipeline and
image the notebook gives them (the mini FLUX there; any FLUX pipeline works) against the package's own
edit (:func:`reference_latents`, the computation ``invert`` and ``edit`` run, up to the latents they decode) and
a closed-form PSNR. Their verdicts (``round_trip_verdict``, ``v_injection_verdict``, ``background_verdict``) are
the grader's too (:mod:`fireflow_edu.mini.assignment`), so a hint reads the same in the notebook and in the
grades. Latents count as equal within :data:`LATENT_TOLERANCE` of the reference's size, not within a PSNR of the
decoded images: on a scene where V injection changes little, a wrong injection decodes within any such margin.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..analysis import fit_slope, rmse
from ..fields import GaussianRectifiedFlow, LinearField, RiccatiField
from ..schedules import uniform
from ..solvers import SOLVERS, integrate

STEP_COUNTS = (8, 16, 32, 64)


def _fields(seed: int = 0):
    """Seeded fields with exact solutions: a random damped linear system and the Riccati field."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)
    linear = LinearField(a - a.T - 0.5 * torch.eye(3, dtype=torch.float64))
    return [(linear, torch.randn(16, 3, generator=g, dtype=torch.float64)),
            (RiccatiField(), 0.2 + 0.3 * torch.rand(16, 3, generator=g, dtype=torch.float64))]


def _grids(invert: bool):
    return (lambda n: uniform(n, 0.0, 1.0)) if invert else uniform


def _run(step, field, x, grid):
    try:
        return integrate(field, x, grid, step)
    except NotImplementedError:
        raise
    except Exception as error:  # a learner's bug: report it as a failed check, with the cause
        raise AssertionError(f"your step raised {type(error).__name__}: {error}") from error


def measure(step, seed: int = 0) -> dict:
    """Order of accuracy, NFE per pass and the error against the reference, per field and direction."""
    rows = []
    for field, x in _fields(seed):
        for invert in (False, True):
            grid = _grids(invert)
            t0, t1 = (0.0, 1.0) if invert else (1.0, 0.0)
            exact = field.exact(x, t0, t1)
            runs = [_run(step, field, x, grid(n)) for n in STEP_COUNTS]
            errors = [max(rmse(r.x, exact), 1e-300) for r in runs]
            rows.append({"field": type(field).__name__, "invert": invert, "nfe": [r.nfe for r in runs],
                         "errors": errors, "order": fit_slope([1 / n for n in STEP_COUNTS], errors),
                         "results": [r.x for r in runs]})
    return {"rows": rows}


def _matches(measured: dict, method: str, seed: int, tol: float) -> bool:
    """Whether every result equals the registered ``method``'s on the same fields and grids."""
    reference = measure(SOLVERS[method].step, seed)["rows"]
    return all(torch.allclose(a, b, rtol=0, atol=tol)
               for row, ref in zip(measured["rows"], reference) for a, b in zip(row["results"], ref["results"]))


def _direction_hint(measured: dict) -> str | None:
    forward = [row for row in measured["rows"] if not row["invert"]]
    backward = [row for row in measured["rows"] if row["invert"]]
    ok = lambda rows: all(row["errors"][-1] < 0.5 * row["errors"][0] for row in rows)  # converges
    if ok(forward) != ok(backward):
        good, bad = ("sampling (t: 1 -> 0)", "inversion (t: 0 -> 1)") if ok(forward) else \
                    ("inversion (t: 0 -> 1)", "sampling (t: 1 -> 0)")
        return (f"your step works for {good} but not for {bad}: use the signed step h (negative when "
                "sampling) as given, never abs(h) or a fixed sign")
    return None


def _nfe_per_step(measured: dict) -> list[float]:
    return [(row["nfe"][-1] - row["nfe"][0]) / (STEP_COUNTS[-1] - STEP_COUNTS[0]) for row in measured["rows"]]


def _order(measured: dict) -> float:
    return float(np.median([row["order"] for row in measured["rows"]]))


def _pass(exercise: str, message: str) -> None:
    print(f"PASS {exercise}: {message}")


def _require(condition: bool, exercise: str, hint: str) -> None:
    # an explicit raise, not assert: a check must still fail under python -O
    if not condition:
        raise AssertionError(f"{exercise}: {hint}")


def _measure_step(step, exercise: str, seed: int) -> tuple[dict, list[float], float]:
    """Measure a learner's step; fail at once if it only works in one time direction."""
    measured = measure(step, seed)
    hint = _direction_hint(measured)
    _require(hint is None, exercise, hint or "")
    return measured, _nfe_per_step(measured), _order(measured)


def check_euler_step(euler_step, exercise: str = "Exercise A.1", seed: int = 0) -> None:
    """x_next = x + h v(x, t): 1 NFE per step, first order, equal to the reference."""
    measured, nfe, order = _measure_step(euler_step, exercise, seed)
    _require(all(n == 1 for n in nfe), exercise, f"your Euler step used {nfe[0]:g} velocity evaluations per step; "
             "Euler evaluates v once, at the start of the step")
    _require(_matches(measured, "euler", seed, 1e-12), exercise,
             f"your step differs from x + h * v(x, t) (observed order {order:.2f}); "
             "evaluate the velocity at the start of the step, (x, t), not at t + h")
    _pass(exercise, f"euler_step matches the reference: 1 NFE per step, order {order:.2f}")


def check_midpoint_step(midpoint_step, exercise: str = "Exercise B.1", seed: int = 0) -> None:
    """x_next = x + h v(x + h/2 v(x, t), t + h/2): 2 NFE per step, second order."""
    measured, nfe, order = _measure_step(midpoint_step, exercise, seed)
    _require(not (all(n == 1 for n in nfe) and order < 1.5), exercise,
             f"your midpoint step behaves like Euler (1 NFE per step, order {order:.2f}); "
             "take a half Euler step to x + h/2 * v(x, t), then use the velocity there, at t + h/2")
    _require(all(n == 2 for n in nfe), exercise, f"the midpoint method uses 2 NFE per step, yours used {nfe[0]:g}")
    _require(_matches(measured, "midpoint", seed, 1e-10), exercise,
             f"your step is not the midpoint update (observed order {order:.2f}); check the midpoint: "
             "position x + h/2 * v(x, t) and time t + h/2, then x + h * v(midpoint)")
    _pass(exercise, f"midpoint_step matches the reference: 2 NFE per step, order {order:.2f}")


def check_rf_solver_step(rf_solver_step, exercise: str = "Exercise B.2", seed: int = 0) -> None:
    """RF-Solver's Taylor form x + h v0 + h^2/2 (vm - v0)/(h/2): equals the midpoint update to rounding."""
    measured, nfe, order = _measure_step(rf_solver_step, exercise, seed)
    _require(all(n == 2 for n in nfe), exercise, f"RF-Solver uses 2 NFE per step (v0 and vm), yours used {nfe[0]:g}")
    _require(_matches(measured, "midpoint", seed, 1e-9), exercise,
             f"your RF-Solver step is not second-order Taylor (observed order {order:.2f}); "
             "the derivative is (vm - v0) / (h/2) and the update x + h*v0 + h**2/2 * derivative")
    _pass(exercise, f"rf_solver_step equals the midpoint update to rounding: 2 NFE per step, order {order:.2f}")


def check_fireflow_step(fireflow_step, exercise: str = "Exercise C.1", seed: int = 0) -> None:
    """FireFlow: N + 1 NFE per pass, second order, equal to the reference."""
    measured, nfe, order = _measure_step(fireflow_step, exercise, seed)
    _require(not all(n == 2 for n in nfe), exercise, "your fireflow step used 2 NFE per step: reuse the midpoint "
             "velocity of the previous step (cache['v']) as this step's start velocity")
    passes = [row["nfe"] for row in measured["rows"]]
    _require(all(p == [n + 1 for n in STEP_COUNTS] for p in passes), exercise,
             f"a pass of N steps should cost N + 1 NFE, yours cost {passes[0]} for N = {list(STEP_COUNTS)}; "
             "evaluate v(x, t) only when the cache is empty (the first step)")
    _require(order >= 1.5, exercise, f"your fireflow step is only order {order:.2f}; cache the velocity at the "
             "midpoint (the one you step with), not the start velocity")
    _require(_matches(measured, "fireflow", seed, 1e-10), exercise, "your step is second order but differs from "
             "FireFlow's update; the next start velocity must be exactly this step's midpoint velocity")
    _pass(exercise, f"fireflow_step matches the reference: N + 1 NFE per pass, order {order:.2f}")


def check_fit_order(fit_order, exercise: str = "Exercise A.2") -> None:
    """fit_order(dts, errors) -> the least-squares slope of log(error) against log(dt)."""
    dts = [0.1, 0.05, 0.025, 0.0125]
    for order, constant in ((1.0, 3.0), (2.0, 0.5), (2.5, 10.0)):
        errors = [constant * dt**order for dt in dts]
        got = float(fit_order(dts, errors))
        linear_slope = float(np.polyfit(dts, errors, 1)[0])
        hint = ("fit in log-log space: the order is the slope of log(error) against log(dt)"
                if abs(got - linear_slope) < 1e-6 else f"for errors = {constant} * dt^{order} you returned {got:.4f}")
        _require(abs(got - order) <= 1e-6, exercise, hint)
    _pass(exercise, "fit_order recovers the exponent of a power law")


def check_round_trip(round_trip, exercise: str = "Exercise C.2") -> None:
    """round_trip(step, velocity, x, num_steps) -> (x_back, nfe): invert on the reversed grid, then regenerate."""
    field = GaussianRectifiedFlow(torch.tensor([2.0, -1.0], dtype=torch.float64), 0.5)
    x = field.exact(torch.randn(32, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64), 1.0, 0.0)
    step = SOLVERS["fireflow"].step
    x_back, nfe = round_trip(step, field, x, 8)
    inverted = integrate(field, x, uniform(8, 0.0, 1.0), step)
    expected = integrate(field, inverted.x, uniform(8), step)
    _require(nfe == 18, exercise, f"8 FireFlow steps each way should cost 2 x 9 = 18 NFE, you reported {nfe}")
    _require(not torch.allclose(x_back, x, atol=1e-12), exercise,
             "you returned the input unchanged; run the inversion and then the regeneration")
    _require(torch.allclose(x_back, expected.x, atol=1e-10), exercise, "your round trip differs from 'invert along "
             "uniform(n, 0, 1), then regenerate along uniform(n)': check the two grids' directions")
    _pass(exercise, f"round trip matches: RMSE {rmse(x_back, x):.2e} at 18 NFE")



# --- Assignment D: inverting and editing on a trained FLUX (the mini FLUX in the notebook) -------------------------

LATENT_TOLERANCE = 1e-4  # largest latent difference, relative to the reference's largest value, that counts as equal
PSNR_DIGITS = 1e-3  # dB: a background PSNR must match the reference to three decimals
# the typical wrong V injections, as a re-keying of the V an inversion stored at every interval:
# (interval from the noise end, stage, block) -> features, or dropped
MISTAKES = {
    "none": lambda key, steps, inject: None,
    "last": lambda key, steps, inject: key if key[0] >= steps - inject else None,
    "all": lambda key, steps, inject: key,
    # a loop that keys V by its own step index meets, in denoising step s, what inversion step s stored
    "same_step": lambda key, steps, inject: (steps - 1 - key[0], *key[1:]) if steps - 1 - key[0] < inject else None,
}


def difference(mine, reference) -> float:
    """Largest difference between two latents, relative to the reference's largest value."""
    mine, reference = (torch.as_tensor(a, dtype=torch.float64) for a in (mine, reference))
    if mine.shape != reference.shape:
        raise ValueError(f"latents of shape {tuple(mine.shape)} where {tuple(reference.shape)} belong")
    return float((mine - reference).abs().max() / reference.abs().max())


def reference_latents(pipe, pixels, source_prompt: str, target_prompt: str, steps: int, inject: int = 0,
                      role: str = "edit", mistake: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The package's FireFlow edit as :func:`fireflow_edu.editing.edit` runs it, up to the latents it decodes:
    invert the source latents with ``source_prompt`` at the inversion guidance, storing the V of every attention
    block the adapter offers over the ``inject`` intervals nearest the noise, then denoise with ``target_prompt``
    at ``role``'s guidance ("edit", or "invert" for a reconstruction), injecting. Returns (noise, latents).
    ``mistake`` (a key of :data:`MISTAKES`) stores every interval and re-keys them before denoising instead."""
    from contextlib import nullcontext

    from ..editing import model_adapter
    from ..editing.features import AttentionFeatures

    adapter = model_adapter(pipe)
    latents = adapter.encode_image(pixels)
    timesteps = adapter.schedule(steps, latents)
    size = pixels.shape[:2]
    stored = steps if mistake is not None else inject
    features = AttentionFeatures("replace_v", stored, adapter.resolve_blocks(None)) if stored else None
    with adapter.feature_hooks(features) if features is not None else nullcontext():
        source = adapter.velocity(adapter.encode_prompt(source_prompt), *size, timesteps.flip(0),
                                  adapter.resolve_guidance("auto", "invert", steps), features)
        noise = integrate(source, latents, timesteps.flip(0), "fireflow").x
        if mistake is not None:
            moved = {key: MISTAKES[mistake](key, steps, inject) for key in features.stored}
            features.stored = {new: features.stored[key] for key, new in moved.items() if new is not None}
        target = adapter.velocity(adapter.encode_prompt(target_prompt), *size, timesteps,
                                  adapter.resolve_guidance("auto", role, steps), features)
        return noise, integrate(target, noise, timesteps, "fireflow").x


def expected_calls(num_steps: int) -> list[tuple]:
    """What one FireFlow pass of ``num_steps`` steps notes and evaluates, in order: before_call(0, "start"),
    the start velocity, then before_call(i, "mid") and the midpoint velocity of each step i."""
    notes = [("before", 0, "start")] + [("before", i, "mid") for i in range(num_steps)]
    return [entry for note in notes for entry in (note, ("call",))]


def round_trip_verdict(logs: list[list], noise, back, reference_noise, reference_back, num_steps: int) -> str | None:
    """Why an inversion + reconstruction with the learner's ``fireflow_pass`` is not FireFlow's, or None.

    ``logs``: per pass, the before_call notes ("before", step, stage) and evaluations ("call", ...) in order;
    ``noise`` and ``back``: the learner's inverted and reconstructed latents, beside the reference's."""
    calls = [sum(entry[0] == "call" for entry in log) for log in logs]
    n = num_steps
    if calls[0] == calls[1] and calls[0] in (2 * n, 2 * n + 1):
        return (f"your fireflow_pass evaluated the velocity {calls[0]} times in a pass of {n} steps: evaluating "
                "v(x, t) at every step's start is the midpoint method; FireFlow reuses the previous midpoint "
                f"velocity instead, N + 1 = {n + 1} evaluations")
    if calls[0] == n + 1 and calls[1] == n:
        return (f"your second pass evaluated the velocity {n} times: it reused the first pass's last velocity. Each "
                "pass starts with a fresh evaluation at its own first time (keep the reused velocity in the loop, "
                "not between calls)")
    if calls != [n + 1, n + 1]:
        return (f"your fireflow_pass evaluated the velocity {calls[0]} and {calls[1]} times in two passes of {n} "
                f"steps; FireFlow needs N + 1 = {n + 1} per pass (once at the start, once at each midpoint)")
    expected = expected_calls(n)
    for log in logs:
        got = [("call",) if entry[0] == "call" else tuple(entry) for entry in log]
        if got != expected:
            first = next(i for i, (a, b) in enumerate(zip([*got, None], [*expected, None])) if a != b)
            return (f"call before_call(step, stage) just before each velocity evaluation: before_call(0, 'start') "
                    f"before the first, before_call(i, 'mid') before step i's midpoint; at entry {first} of a pass "
                    f"you gave {got[first] if first < len(got) else 'nothing'} where {expected[first]} belongs")
    error = difference(noise, reference_noise)
    if not error <= LATENT_TOLERANCE:
        return (f"your inversion (the pass along the increasing grid, data to noise) differs from FireFlow's "
                f"(by {error:.2g} of the noise's size): step from t to the next grid value t_next with the signed "
                "h = t_next - t, the midpoint at t + h/2")
    error = difference(back, reference_back)
    if not error <= LATENT_TOLERANCE:
        return (f"your inversion is right but the reconstruction (the pass along the decreasing grid) is not "
                f"FireFlow's (it differs by {error:.2g} of the latents' size): there h < 0; use the signed "
                "h = t_next - t as given, never abs(h)")
    return None


def v_injection_verdict(edited, calls: list[int], hooks_left: int, reference, steps: int, inject: int,
                        mistakes) -> str | None:
    """Why the learner's edited latents are not FireFlow's V-injection edit, or None. ``mistakes(name)`` gives
    the latents of a typical mistake (:data:`MISTAKES`, made by :func:`reference_latents`); called only when the
    answer differs, to name what it equals."""
    if hooks_left:
        return (f"your edit left {hooks_left} forward hook(s) on the transformer: remove each (handle.remove()) "
                "when the edit ends, also after an error (try/finally)")
    if calls != [steps + 1, steps + 1]:
        return (f"your edit evaluated the source velocity {calls[0]} and the target velocity {calls[1]} times for "
                f"{steps} steps: invert with the source velocity, denoise with the target one, {steps + 1} "
                "FireFlow evaluations each")
    error = difference(edited, reference)
    if error <= LATENT_TOLERANCE:
        return None
    k = f"{inject} denoising step{'s' if inject > 1 else ''}"
    hints = {
        "none": "it equals the edit without injection: V was never replaced. Store V during the inversion's "
                f"steps over the first {inject} interval(s) from the noise end and return it from the hook there",
        "last": f"it injects V in the last {k} (nearest the data) instead of the first {k} (nearest the noise): "
                "count the intervals from the noise end, denoising step s is interval s",
        "all": f"it injects V in every denoising step, not only the first {k}",
        "same_step": "it replaces V with what the inversion stored at the same step index, which covers the other "
                     "end of the time axis: key V by the interval from the noise end (inversion step s is interval "
                     "N - 1 - s, denoising step s is interval s)",
    }
    for name, hint in hints.items():
        if difference(edited, mistakes(name)) <= LATENT_TOLERANCE:
            return f"your edit is not FireFlow's V injection: {hint}"
    return f"your edit differs from the package's edit with V injection (by {error:.2g} of the latents' size)"


def background_verdict(got: float, expected: float, alternatives: dict[str, float]) -> str | None:
    """Why a background PSNR is not PIE-Bench's, or None; ``alternatives``: the values of the typical mistakes
    ("kept pixels only", "edited region", "0-255 values") on the same case."""
    if abs(got - expected) <= PSNR_DIGITS:
        return None
    hints = {"kept pixels only": "you averaged over the unedited pixels only; PIE-Bench multiplies both images by "
                                 "the inverted mask and averages over the whole image, zeroed pixels included",
             "edited region": "you measured the edited region: the mask is 1 where the edit happens, so keep 1 - mask",
             "0-255 values": "you used 0-255 values with a peak of 1: scale the images to [0, 1] first"}
    for name, value in alternatives.items():
        if abs(got - value) <= PSNR_DIGITS:
            return f"your background PSNR is {got:.3f} dB where PIE-Bench gives {expected:.3f}: {hints[name]}"
    return f"your background PSNR is {got:.3f} dB where PIE-Bench's reference gives {expected:.3f} dB"


class _Logged:
    """A velocity that counts its evaluations and notes each in a shared log, beside the learner's notes."""

    def __init__(self, velocity, log: list):
        self.velocity, self.log, self.calls = velocity, log, 0

    def __call__(self, x, t):
        self.calls += 1
        self.log.append(("call",))
        return self.velocity(x, t)


def _call(function, exercise: str, *args):
    """The learner's function on ``args``; its error (other than a blank exercise) becomes a failed check."""
    try:
        return function(*args)
    except NotImplementedError:
        raise
    except Exception as error:  # a learner's bug: report it as a failed check, with the cause
        raise AssertionError(f"{exercise}: your function raised {type(error).__name__}: {error}") from error


def _model_inputs(pipe, image, steps: int):
    """The pipeline's adapter, the cropped pixels, their latents and the sampling grid of ``steps`` steps."""
    from ..editing import model_adapter
    from ..editing.images import crop_to_multiple, to_pixels

    adapter = model_adapter(pipe)
    pixels = crop_to_multiple(to_pixels(image), adapter.size_multiple)
    latents = adapter.encode_image(pixels)
    return adapter, pixels, latents, adapter.schedule(steps, latents)


def _velocity(adapter, prompt: str, pixels, timesteps, role: str):
    steps = len(timesteps) - 1
    return adapter.velocity(adapter.encode_prompt(prompt), *pixels.shape[:2], timesteps,
                            adapter.resolve_guidance("auto", role, steps))


def check_fireflow_pass(fireflow_pass, pipe, image, prompt: str, steps: int = 8,
                        exercise: str = "Exercise D.1") -> None:
    """fireflow_pass(velocity, x, timesteps, before_call) inverts ``image`` (the reversed grid) and reconstructs it
    as FireFlow does on the pipeline's velocity: N + 1 evaluations per pass, before_call(step, stage) before each."""
    from ..editing.metrics import psnr

    adapter, pixels, latents, timesteps = _model_inputs(pipe, image, steps)
    log, logs = [], []
    logged = _Logged(_velocity(adapter, prompt, pixels, timesteps, "invert"), log)
    note = lambda step, stage: log.append(("before", step, stage))  # noqa: E731
    noise = torch.as_tensor(_call(fireflow_pass, exercise, logged, latents.clone(), timesteps.flip(0), note))
    logs.append(list(log))
    log.clear()
    back = torch.as_tensor(_call(fireflow_pass, exercise, logged, noise.clone(), timesteps, note), dtype=torch.float32)
    logs.append(list(log))
    reference = reference_latents(pipe, pixels, prompt, prompt, steps, role="invert")
    why = round_trip_verdict(logs, noise, back, *reference, steps)
    _require(why is None, exercise, why or "")
    _pass(exercise, f"fireflow_pass inverts and reconstructs as FireFlow does: {steps + 1} + {steps + 1} NFE, the "
          f"reconstruction {psnr(adapter.decode(back, *pixels.shape[:2]), pixels):.1f} dB from the source")


def check_v_injection(edit_with_v_injection, pipe, image, source_prompt: str, target_prompt: str, steps: int = 8,
                      injects: tuple[int, ...] = (1, 2), exercise: str = "Exercise D.2") -> None:
    """edit_with_v_injection(transformer, source_velocity, target_velocity, x, timesteps, inject) equals the
    package's edit (V of every single-stream block stored while inverting, replaced in the first ``inject``
    denoising steps) for each of ``injects``, with N + 1 evaluations of each velocity and no hook left behind."""
    adapter, pixels, latents, timesteps = _model_inputs(pipe, image, steps)
    modules = list(pipe.transformer.modules())
    for inject in injects:
        source = _Logged(_velocity(adapter, source_prompt, pixels, timesteps, "invert"), [])
        target = _Logged(_velocity(adapter, target_prompt, pixels, timesteps, "edit"), [])
        before = [set(module._forward_hooks) for module in modules]
        try:
            edited = _call(edit_with_v_injection, exercise, pipe.transformer, source, target, latents.clone(),
                           timesteps, inject)
        finally:  # the learner's hooks must not touch the reference's edit below
            left = 0
            for module, kept in zip(modules, before):
                for key in set(module._forward_hooks) - kept:
                    left += 1
                    del module._forward_hooks[key]
        prompts = (pixels, source_prompt, target_prompt, steps, inject)
        why = v_injection_verdict(edited, [source.calls, target.calls], left, reference_latents(pipe, *prompts)[1],
                                  steps, inject, lambda name: reference_latents(pipe, *prompts, mistake=name)[1])
        _require(why is None, exercise, f"with inject={inject}: {why}")
    _pass(exercise, f"edit_with_v_injection equals the package's edit for inject = {', '.join(map(str, injects))}: "
          f"{steps + 1} + {steps + 1} NFE, hooks removed")


def check_background_psnr(background_psnr, exercise: str = "Exercise D.3") -> None:
    """background_psnr(source, edited, mask) is PIE-Bench's PSNR of the unedited region: both images in [0, 1]
    times 1 - mask, the mean squared error over the whole image (zeroed pixels included), 10 log10(1 / MSE).

    Checked on images whose answer is known in closed form: a gray source, an edit that adds ``d`` to every
    unedited pixel and paints the masked block, so MSE = (kept pixels / all pixels) d^2."""
    cases = []
    for size, block, d, paint, as_bool in ((8, 4, 10, 250, False), (12, 6, 3, 0, True), (8, 0, 6, 0, False)):
        mask = np.zeros((size, size), dtype=bool)
        mask[:block, :block] = True
        source = np.full((size, size, 3), 100, dtype=np.uint8)
        edited = np.where(mask[..., None], paint, 100 + d).astype(np.uint8)
        kept, edited_share = 1 - block**2 / size**2, block**2 / size**2
        expected = -10 * math.log10(kept * (d / 255) ** 2)
        alternatives = {"kept pixels only": -20 * math.log10(d / 255), "0-255 values": expected - 20 * math.log10(255)}
        if block:
            alternatives["edited region"] = -10 * math.log10(edited_share * ((paint - 100) / 255) ** 2)
        cases.append((source, edited, mask if as_bool else mask.astype(np.uint8), expected, alternatives))
    for source, edited, mask, expected, alternatives in cases:
        got = float(_call(background_psnr, exercise, source, edited, mask))
        why = background_verdict(got, expected, alternatives)
        _require(why is None, exercise, why or "")
    _pass(exercise, "background_psnr is PIE-Bench's PSNR of the unedited region, to three decimals")
