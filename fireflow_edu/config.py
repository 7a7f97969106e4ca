"""The fast-mode switch, read in exactly one place, and where trained results are cached.

CI sets ``FIREFLOW_EDU_FAST=1`` so notebooks and the demo train for fewer steps
and draw fewer samples; learners running a notebook by hand get full mode.
"""

from __future__ import annotations

import os
from pathlib import Path

FAST_ENV_VAR = "FIREFLOW_EDU_FAST"


def fast_mode() -> bool:
    """True when ``FIREFLOW_EDU_FAST`` is set to 1/true/yes (case-insensitive)."""
    value = os.environ.get(FAST_ENV_VAR, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ValueError(f"{FAST_ENV_VAR}={value!r} is not understood; use 1/true/yes or 0/false/no")


def scaled(full: int, fast: int) -> int:
    """Pick ``fast`` in fast mode and ``full`` otherwise (iterations, sample counts)."""
    return fast if fast_mode() else full


def cache_dir() -> Path:
    """Where the package keeps what it trained once per machine (the toy flows): ``$XDG_CACHE_HOME/fireflow_edu``,
    ``~/.cache/fireflow_edu`` by default. Deleting it costs only the training time."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fireflow_edu"
