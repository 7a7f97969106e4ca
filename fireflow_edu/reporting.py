"""Where results leave the package: JSON and JSON-lines files and saved tensors (each written atomically), the
check that a name read from input stays inside the output folder it names a file in, a command's printed table,
its progress bars."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path, PureWindowsPath


def output_name(name: str, what: str, folders: bool = False) -> str:
    """``name`` itself if, joined to an output folder, it names a file inside that folder; else a ValueError that
    names ``what`` (the case it came from) and what is accepted.

    Refused: a name that is empty or not a string, an absolute path (``/x``, ``\\x``, ``C:x``), a ``..``
    component and, unless ``folders``, any separator. ``/`` and ``\\`` both count (Windows reads either), so a
    name is judged the same on every system.
    """
    path = PureWindowsPath(name) if isinstance(name, str) else None
    if folders:
        fits = path is not None and path.parts and not path.anchor and ".." not in path.parts
        accepted = "a relative path below the output folder, without .."
    else:
        fits = path is not None and name not in ("", ".", "..") and not {"/", "\\"} & set(name)
        accepted = "a file name: no / or \\, not . or .."
    if not fits:
        raise ValueError(f"{what}: {name!r} is refused as the name of an output file (accepted: {accepted})")
    return name


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """``write(temporary)`` on a temporary file beside ``path`` (parent folders created), then renamed into place;
    returns the path. An interrupted write never leaves half a file for a resumed run or another process to read:
    ``path`` holds the old content or the new, whole. The temporary name ends in ``.<pid>.tmp`` (two processes never
    share one), so a writer that picks a format from the suffix must be told it (``Image.save(..., format=)``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)  # only left there if write or replace failed
    return path


def write_json(path: str | Path, data) -> Path:
    """``data`` as indented JSON at ``path``, written atomically (:func:`write_atomically`); returns the path."""
    text = json.dumps(data, indent=2) + "\n"
    return write_atomically(path, lambda temporary: temporary.write_text(text))


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """One JSON object per line (``results.jsonl`` of a batch run), written atomically; returns the path."""
    text = "".join(json.dumps(row) + "\n" for row in rows)
    return write_atomically(path, lambda temporary: temporary.write_text(text))


def save_torch(state, path: str | Path) -> Path:
    """``torch.save(state)`` at ``path``, written atomically (:func:`write_atomically`); returns the path."""
    import torch  # here, not at the top: every command's --help imports this module

    return write_atomically(path, lambda temporary: torch.save(state, temporary))


def print_and_save(table: str, results: dict, out: str | Path | None) -> None:
    """Print a command's table and, when ``out`` is given, write its results there as JSON."""
    print(table)
    if out:
        print(f"wrote {write_json(out, results)}")


def terminal_progress() -> bool:
    """Whether a command shows progress bars: only for a person at a terminal, not in a log or a pipe."""
    return sys.stderr.isatty()
