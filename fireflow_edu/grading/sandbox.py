"""The sandbox a submission's kernel runs in: bubblewrap (Debian's ``bubblewrap``, the ``bwrap`` command).

Inside, the grading subprocess and the kernel it starts see:

- their private folder at ``/grading`` (the notebook in ``/grading/work``, where the kernel starts), the one
  place they can write that outlives them; ``/tmp`` and ``HOME`` are empty in-memory folders of their own;
- the installed software, read-only: ``/usr`` (with the merged-``/usr`` links), a few public files of ``/etc``
  (the dynamic linker's cache, fonts, the time zone), Python's prefixes (the interpreter and the environment with its site-packages) and
  the ``fireflow_edu`` package folder (which an editable install keeps in the repository: only that folder of
  the repository is visible, not its solution notebooks); software found elsewhere on Python's path (a
  ``PYTHONPATH``, a ``.pth`` naming another folder) is not, so there the trial run fails and :func:`problem`
  says which module was missing;
- nothing else: not the submissions folder, not the grader's other private folders, not the grader's
  environment variables (only a few named ones pass, see :data:`PASSED_ON`).

Every namespace is new: no network but an unconnected loopback of its own (so the kernel's own ZeroMQ sockets
work and no listener on the machine is reachable), a process tree of its own whose first process is bwrap's,
so when the grading subprocess ends, or the grader kills it, or the grader itself dies (``--die-with-parent``),
every process a submission started ends with it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import fireflow_edu

BWRAP = "bwrap"
INSIDE = Path("/grading")  # where the private folder appears inside
HOME = "/home/student"
MERGED_USR = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
PUBLIC_ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime",
              "/etc/fonts")
PASSED_ON = ("LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # and every FIREFLOW_EDU_*


def software() -> list[Path]:
    """The folders outside ``/usr`` the grading subprocess needs: Python's prefixes, the site-packages on the
    path (a user's own too) and the package; never the path's other entries (the current folder may be the
    repository)."""
    prefixes = (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix)
    sites = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    folders = {Path(p).resolve() for p in (*prefixes, *sites)} | {Path(fireflow_edu.__file__).resolve().parent}
    usr = Path("/usr")
    folders = {f for f in folders if f != usr and usr not in f.parents}  # /usr is bound whole
    return sorted(f for f in folders if not any(a in folders for a in f.parents))  # a parent brings its children


def wrap(command: list[str], private: Path) -> list[str]:
    """``command`` (paths given as seen inside, under :data:`INSIDE`) run in the sandbox, with the host folder
    ``private`` bound at :data:`INSIDE`."""
    # the empty folders first: software that lives under /tmp or /home (a virtual environment there) is bound
    # over them, not hidden by them
    args = [BWRAP, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--tmpfs", "/tmp", "--tmpfs", "/home", "--dir", HOME, "--ro-bind", "/usr", "/usr"]
    for link in MERGED_USR:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    for path in PUBLIC_ETC:
        args += ["--ro-bind-try", path, path]
    for folder in software():
        args += ["--ro-bind", str(folder), str(folder)]
    args += ["--proc", "/proc", "--dev", "/dev", "--bind", str(private), str(INSIDE), "--chdir", str(INSIDE / "work"),
             "--remount-ro", "/"]
    env = {"HOME": HOME, "USER": "student", "TMPDIR": "/tmp",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])}
    env.update({k: v for k, v in os.environ.items() if k in PASSED_ON or k.startswith("FIREFLOW_EDU_")})
    for key, value in sorted(env.items()):
        args += ["--setenv", key, value]
    return [*args, "--", *command]


def problem() -> str | None:
    """Why no sandbox can be made on this machine (bwrap missing, or the kernel refuses it namespaces), or
    None when one can: a trial run of the interpreter in it, once per process."""
    return _trial(BWRAP)


@functools.lru_cache(maxsize=None)
def _trial(bwrap: str) -> str | None:
    if shutil.which(bwrap) is None:
        return f"{bwrap} is not installed (Debian's bubblewrap: `apt-get install bubblewrap`)"
    with tempfile.TemporaryDirectory(prefix="grade-trial-") as private:
        (Path(private) / "work").mkdir()
        try:
            trial = subprocess.run(wrap([sys.executable, "-c", "import nbclient"], Path(private)),
                                   capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"{bwrap} could not run: {error}"
    if trial.returncode != 0:
        lines = trial.stderr.strip().splitlines() or [f"exit status {trial.returncode}"]
        return f"{bwrap} failed: {lines[-1]}"
    return None
