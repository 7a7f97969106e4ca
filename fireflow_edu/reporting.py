"""Where results leave the package: JSON and JSON-lines files, saved tensors, a command's printed table, its
progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path


def write_json(path: str | Path, data) -> Path:
    """``data`` as indented JSON at ``path`` (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """One JSON object per line (``results.jsonl`` of a batch run); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def save_torch(state, path: str | Path) -> Path:
    """``torch.save(state)`` at ``path`` (parent folders created) through a temporary file beside it, renamed into
    place: an interrupted save never leaves half a file for a resumed run or another process to load."""
    import torch  # here, not at the top: every command's --help imports this module

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    temporary.replace(path)
    return path


def print_and_save(table: str, results: dict, out: str | Path | None) -> None:
    """Print a command's table and, when ``out`` is given, write its results there as JSON."""
    print(table)
    if out:
        print(f"wrote {write_json(out, results)}")


def terminal_progress() -> bool:
    """Whether a command shows progress bars: only for a person at a terminal, not in a log or a pipe."""
    return sys.stderr.isatty()
