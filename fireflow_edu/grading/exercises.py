"""What each assignment asks for: per exercise, the function a student writes and how the grader probes it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    """``label`` as in the notebook ("Exercise A.1"), the ``function`` the student defines, the probe ``kind``
    (a key of :data:`fireflow_edu.grading.probe.PROBES`) and, for a step, the registered ``method`` it must equal."""

    label: str
    function: str
    kind: str
    method: str = ""


ASSIGNMENTS: dict[str, tuple[Exercise, ...]] = {
    "a_euler_step": (Exercise("Exercise A.1", "euler_step", "step", "euler"),
                     Exercise("Exercise A.2", "fit_order", "fit_order")),
    "b_midpoint_rf_solver": (Exercise("Exercise B.1", "midpoint_step", "step", "midpoint"),
                             Exercise("Exercise B.2", "rf_solver_step", "step", "rf_solver")),
    "c_fireflow_step": (Exercise("Exercise C.1", "fireflow_step", "step", "fireflow"),
                        Exercise("Exercise C.2", "round_trip", "round_trip")),
}


def assignment_exercises(name: str) -> tuple[Exercise, ...]:
    """The exercises of assignment ``name``; a clear error lists the assignments."""
    if name not in ASSIGNMENTS:
        raise FileNotFoundError(f"no assignment {name!r}; available: {', '.join(ASSIGNMENTS)}")
    return ASSIGNMENTS[name]
