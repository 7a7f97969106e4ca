"""PIE-Bench (Ju et al. 2024) run the way the published numbers were made (PnPInversion's ``evaluate.py``):
the harness (:mod:`~fireflow_edu.piebench.harness`), the reference metrics (:mod:`~fireflow_edu.piebench.metrics`)
and the ``piebench`` command. Family-neutral, beside the model families."""
