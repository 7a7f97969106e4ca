"""What runs inside a submission's kernel after the student's cells: the student's functions on fresh inputs.

The grader sends this file's source with a request (JSON: the exercises, each with inputs it drew for this
run) and reads back one printed line, ``FIREFLOW_PROBE_RESULT {json}``: what each function returned and how
many times it called the velocity. Nothing here judges; expected values are computed in the grader's own
process (:mod:`fireflow_edu.grading.judge`), so code the student patched in the kernel cannot change a verdict.
The source is self-contained (standard library and torch only, no ``fireflow_edu`` import; diffusers for the
exercises on the mini FLUX, whose transformer it loads from the folder the request names): the package's
modules inside the kernel are the student's to patch. The grader imports the same definitions
(:class:`ProbeField`, :func:`run_step`) to compute what the reference returns on the same inputs. The mini FLUX's
velocities are built here from the conditioning the grader computed (prompt embeddings, position ids), so the
student's code gets the same v(x, t) as the reference.
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


_TRANSFORMERS = {}  # folder: the mini FLUX transformer, loaded once per kernel


def _transformer(folder):
    if folder not in _TRANSFORMERS:
        from diffusers import FluxTransformer2DModel

        # one thread: the mini's matrices gain nothing from a second, and kernels graded at once share the cores
        torch.set_num_threads(1)
        _TRANSFORMERS[folder] = FluxTransformer2DModel.from_pretrained(folder).eval()
    return _TRANSFORMERS[folder]


class MiniVelocity:
    """v(x, t) of a FLUX transformer for one prompt at one distilled guidance scale, as the package's FLUX adapter
    calls it (timestep t itself, guidance as the raw scale); ``calls`` counts evaluations, ``log`` (a shared list)
    records each as ("call", name)."""

    def __init__(self, transformer, condition, img_ids, guidance, name="v", log=None):
        self.transformer, self.name, self.log, self.calls = transformer, name, log, 0
        self.embeds = torch.tensor(condition["prompt_embeds"], dtype=torch.float32)
        self.pooled = torch.tensor(condition["pooled"], dtype=torch.float32)
        self.text_ids = torch.tensor(condition["text_ids"], dtype=torch.float32)
        self.img_ids = torch.tensor(img_ids, dtype=torch.float32)
        self.guidance = float(guidance)

    def __call__(self, x, t):
        self.calls += 1
        if self.log is not None:
            self.log.append(("call", self.name))
        batch = x.shape[0]
        with torch.no_grad():
            return self.transformer(hidden_states=x, timestep=torch.full((batch,), float(t)),
                                    guidance=torch.full((batch,), self.guidance), pooled_projections=self.pooled,
                                    encoder_hidden_states=self.embeds, txt_ids=self.text_ids, img_ids=self.img_ids,
                                    return_dict=False)[0]


def _latents(case):
    return torch.tensor(case["latents"], dtype=torch.float32), torch.tensor(case["timesteps"], dtype=torch.float32)


def probe_mini_round_trip(function, request):
    """``function`` = fireflow_pass(velocity, x, timesteps, before_call): invert along the reversed grid, then
    reconstruct along the grid; each pass's calls and the order of its before_call notes and evaluations."""
    transformer, runs = _transformer(request["model"]), []
    for case in request["cases"]:
        latents, timesteps = _latents(case)
        log = []
        velocity = MiniVelocity(transformer, case["source"], case["img_ids"], case["source_guidance"], log=log)
        note = lambda step, stage: log.append(("before", int(step), str(stage)))
        noise = function(velocity, latents.clone(), timesteps.flip(0), note)
        inversion, log[:] = list(log), []
        back = function(velocity, torch.as_tensor(noise, dtype=torch.float32).clone(), timesteps, note)
        runs.append({"noise": torch.as_tensor(noise, dtype=torch.float32).tolist(),
                     "x": torch.as_tensor(back, dtype=torch.float32).tolist(), "logs": [inversion, list(log)]})
    return {"runs": runs}


def probe_mini_v_injection(function, request):
    """``function`` = edit_with_v_injection(transformer, source_velocity, target_velocity, x, timesteps, inject):
    the edited latents, each velocity's calls, and how many forward hooks it left on the transformer."""
    transformer, runs = _transformer(request["model"]), []
    for case in request["cases"]:
        latents, timesteps = _latents(case)
        source = MiniVelocity(transformer, case["source"], case["img_ids"], case["source_guidance"])
        target = MiniVelocity(transformer, case["target"], case["img_ids"], case["target_guidance"])
        edited = function(transformer, source, target, latents.clone(), timesteps, int(case["inject"]))
        left = sum(len(module._forward_hooks) for module in transformer.modules())
        for module in transformer.modules():  # the next case starts clean, whatever this one left
            module._forward_hooks.clear()
        runs.append({"x": torch.as_tensor(edited, dtype=torch.float32).tolist(),
                     "calls": [source.calls, target.calls], "hooks_left": left})
    return {"runs": runs}


def probe_background_psnr(function, request):
    """``function`` = background_psnr(source, edited, mask) on uint8 images [H, W, 3] and a 0/1 mask [H, W]."""
    import numpy as np

    scores = []
    for case in request["cases"]:
        source, edited = (np.array(case[name], dtype=np.uint8) for name in ("source", "edited"))
        scores.append(float(function(source, edited, np.array(case["mask"], dtype=np.uint8))))
    return {"scores": scores}


PROBES = {"step": probe_step, "fit_order": probe_fit_order, "round_trip": probe_round_trip,
          "mini_round_trip": probe_mini_round_trip, "mini_v_injection": probe_mini_v_injection,
          "background_psnr": probe_background_psnr}


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
