"""The editing algorithms by name, for the commands, batch runs and PIE-Bench: one call, one result type.

- ``fireflow``: FireFlow's recipe (:func:`~fireflow_edu.editing.api.edit`): inversion with any solver, attention
  features injected, an optional mask (:mod:`~fireflow_edu.editing.masks`);
- ``rf_inversion``: :func:`~fireflow_edu.editing.rf_inversion.rf_inversion_edit`, controlled ODEs both ways;
- ``flowedit``: :func:`~fireflow_edu.editing.flowedit.flowedit`, inversion-free.

:func:`run_algorithm` takes the settings a command gathered and refuses, before any model call, a setting the
chosen algorithm has no use for (a mask for FlowEdit, ``inject`` for RF-Inversion...), so nothing is silently
ignored. ``source_guidance`` means the guidance on the source side in each: FireFlow's and RF-Inversion's
inversion, FlowEdit's source velocity.
"""

from __future__ import annotations

from importlib import import_module

ALGORITHMS = {  # name: (module, function, the settings it takes)
    "fireflow": ("api", "edit", ("steps", "inject", "guidance", "source_guidance", "method", "strategy", "blocks",
                                 "mask", "mask_rule", "mask_mode", "cache_device")),
    "rf_inversion": ("rf_inversion", "rf_inversion_edit", ("steps", "gamma", "eta", "start", "stop", "guidance",
                                                           "source_guidance", "seed")),
    "flowedit": ("flowedit", "flowedit", ("steps", "n_max", "n_avg", "n_min", "guidance", "source_guidance", "seed")),
}
MASK_USERS = tuple(name for name, (*_, takes) in ALGORITHMS.items() if "mask" in takes)


def check_settings(algorithm: str, settings: dict) -> None:
    """A clear error for an unknown algorithm or a setting it cannot use."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; algorithms: {', '.join(ALGORITHMS)}")
    takes = ALGORITHMS[algorithm][2]
    if "mask" in settings and "mask" not in takes:
        raise ValueError(f"{algorithm} cannot use a mask: masks keep the unedited region on an inversion's "
                         f"trajectory, which only {', '.join(MASK_USERS)} records")
    unused = sorted(set(settings) - set(takes))
    if unused:
        raise ValueError(f"{algorithm} has no use for {', '.join(unused)}; it takes {', '.join(takes)}")


def run_algorithm(algorithm: str, pipe, image, source_prompt: str, target_prompt: str, progress: bool = True,
                  **settings):
    """Edit with ``algorithm`` and the ``settings`` it takes (its own defaults for the rest); an EditResult."""
    check_settings(algorithm, settings)
    module, function, _ = ALGORITHMS[algorithm]
    if algorithm == "fireflow" and "source_guidance" in settings:
        settings["inversion_guidance"] = settings.pop("source_guidance")
    edit = getattr(import_module(f"{__package__}.{module}"), function)
    return edit(pipe, image, source_prompt, target_prompt, progress=progress, **settings)
