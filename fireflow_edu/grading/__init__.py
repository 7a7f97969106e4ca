"""Assignments: self-checks (``check_*``), student-copy generation and a folder grader."""

from ..lazy import lazy_exports

__all__ = ["check_background_psnr", "check_euler_step", "check_fireflow_pass", "check_fireflow_step", "check_fit_order",
           "check_midpoint_step", "check_rf_solver_step", "check_round_trip", "check_v_injection"]
__getattr__ = lazy_exports(__name__, {name: "checks" for name in __all__})
