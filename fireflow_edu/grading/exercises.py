"""What each assignment asks for: per exercise, the function a student writes and how the grader probes it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    """``label`` as in the notebook ("Exercise A.1"), the ``function`` the student defines, the probe ``kind``
    (a key of :data:`fireflow_edu.grading.probe.PROBES`), for a step the registered ``method`` it must equal, and
    for an exercise on a trained model the ``model`` whose module draws its cases and judges it
    (a key of :data:`MODEL_JUDGES`)."""

    label: str
    function: str
    kind: str
    method: str = ""
    model: str = ""


# Exercises on a trained model are drawn and judged by a module of that model's family, named here and imported
# on use (as the editing boundary finds an adapter): grading, family-neutral, imports no family.
MODEL_JUDGES = {"mini": "fireflow_edu.mini.assignment"}


ASSIGNMENTS: dict[str, tuple[Exercise, ...]] = {
    "a_euler_step": (Exercise("Exercise A.1", "euler_step", "step", "euler"),
                     Exercise("Exercise A.2", "fit_order", "fit_order")),
    "b_midpoint_rf_solver": (Exercise("Exercise B.1", "midpoint_step", "step", "midpoint"),
                             Exercise("Exercise B.2", "rf_solver_step", "step", "rf_solver")),
    "c_fireflow_step": (Exercise("Exercise C.1", "fireflow_step", "step", "fireflow"),
                        Exercise("Exercise C.2", "round_trip", "round_trip")),
    "d_inversion_editing": (Exercise("Exercise D.1", "fireflow_pass", "mini_round_trip", model="mini"),
                            Exercise("Exercise D.2", "edit_with_v_injection", "mini_v_injection", model="mini"),
                            Exercise("Exercise D.3", "background_psnr", "background_psnr", model="mini")),
}


def assignment_exercises(name: str) -> tuple[Exercise, ...]:
    """The exercises of assignment ``name``; a clear error lists the assignments."""
    if name not in ASSIGNMENTS:
        raise FileNotFoundError(f"no assignment {name!r}; available: {', '.join(ASSIGNMENTS)}")
    return ASSIGNMENTS[name]
