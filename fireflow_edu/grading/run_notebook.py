"""The grading subprocess: run one notebook in a kernel under a memory limit and save its outputs.

    python -m fireflow_edu.grading.run_notebook NOTEBOOK EXECUTED CELL_TIMEOUT MEMORY_BYTES

A module of its own so that the subprocess imports only nbformat and nbclient: the grader's judge (and with
it torch) stays in the grader's process, where the answers are decided.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def execute(notebook_path: Path, executed_path: Path, cell_timeout: int, memory_bytes: int) -> None:
    """Limit this process's address space (the kernel it starts inherits the limit), execute the notebook in a
    kernel started in its folder, save the outputs."""
    import nbformat
    from nbclient import NotebookClient

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    notebook = nbformat.read(notebook_path, as_version=4)
    client = NotebookClient(notebook, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(notebook_path.parent)}})
    client.execute()
    nbformat.write(notebook, executed_path)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    execute(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
