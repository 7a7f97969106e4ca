"""Batch editing over a JSONL of cases, sharded across processes and GPUs with accelerate.

Each line of the cases file is an object with ``image`` (path, relative to the cases
file, or ``skimage:NAME``), ``source_prompt``, ``target_prompt``, an optional ``id``
and an optional ``mask`` (image path; white = the region meant to change). Under
``accelerate launch -m fireflow_edu batch ...`` every process takes its share of the
cases on its own device (:mod:`~fireflow_edu.editing.sharding`); the main process gathers
the rows into ``results.jsonl`` (in case order, each row naming the ``process`` that ran it)
and ``summary.json``; each edited image is saved as ``OUT/images/<id>.png`` (its row's ``image``). An id
becomes a file name, so it is checked when the cases are read (no separator, not ``..``; ids unique), and every
file is written through a temporary one renamed into place. A plain ``python -m`` run is one process that does
every case.

Per case: NFE, seconds, and preservation of the source (PSNR, SSIM, RMSE 0-255 over
the whole image, and PSNR outside the mask when a mask is given).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..reporting import output_name, write_atomically, write_json, write_jsonl
from .algorithms import run_algorithm
from .boundary import model_adapter
from .images import crop_to_multiple, load_image, to_pixels
from .metrics import masked_psnr, psnr, rmse_255, ssim
from .sharding import Shards

REQUIRED_KEYS = ("image", "source_prompt", "target_prompt")


def read_cases(path: Path) -> list[dict]:
    """Parse and validate the JSONL cases file (blank lines skipped); ids (strings or integers, unique, each a file
    name: :func:`~fireflow_edu.reporting.output_name`) default to the line number."""
    cases, lines = [], {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not valid JSON ({error})") from error
        missing = [key for key in REQUIRED_KEYS if key not in case]
        if missing:
            raise ValueError(f"{path}:{number}: missing {', '.join(missing)}; each case needs {', '.join(REQUIRED_KEYS)}")
        case.setdefault("id", str(number))
        if isinstance(case["id"], bool) or not isinstance(case["id"], (str, int)):
            raise ValueError(f"{path}:{number}: id {case['id']!r} is neither a string nor an integer")
        name = output_name(str(case["id"]), f"{path}:{number}: id")
        if name in lines:  # the second image would replace the first
            raise ValueError(f"{path}:{number}: id {name!r} is also the id of line {lines[name]}; ids are unique")
        lines[name] = number
        cases.append(case)
    if not cases:
        raise ValueError(f"{path} holds no cases")
    return cases


def _resolve(spec: str, base: Path):
    return load_image(spec if spec.startswith("skimage:") or Path(spec).is_absolute() else str(base / spec))


def edit_case(pipe, case: dict, base: Path, out: Path, algorithm: str = "fireflow", **settings) -> dict:
    """Run one case with ``algorithm`` (:mod:`~fireflow_edu.editing.algorithms`) and its ``settings``, save the edited
    image as ``out/images/<id>.png`` and measure how well the source is preserved."""
    result = run_algorithm(algorithm, pipe, _resolve(case["image"], base), case["source_prompt"],
                           case["target_prompt"], progress=False, **settings)
    image = Path("images") / f"{case['id']}.png"
    write_atomically(Path(out) / image, lambda temporary: result.image.save(temporary, format="PNG"))
    source, edited = np.asarray(result.source), np.asarray(result.image)
    row = {"id": case["id"], "image": image.as_posix(), "nfe": result.nfe, "seconds": result.seconds["total"],
           "psnr": psnr(source, edited), "ssim": ssim(source, edited), "rmse_255": rmse_255(source, edited)}
    if "mask" in case:
        mask = crop_to_multiple(to_pixels(_resolve(case["mask"], base)), model_adapter(pipe).size_multiple)[..., 0] > 127
        row["background_psnr"] = masked_psnr(source, edited, mask)
    return row


def summarize(rows: list[dict]) -> dict:
    numeric = [key for key in rows[0] if key not in ("id", "image", "process")]
    summary = {"cases": len(rows)}
    for key in numeric:
        values = [row[key] for row in rows if key in row and np.isfinite(row[key])]
        if values:
            summary[f"mean_{key}"] = statistics.fmean(values)
    return summary


def run_cases(cases_path: Path, out: Path, make_pipeline: Callable, **settings) -> dict | None:
    """Shard the cases over the processes (:class:`~fireflow_edu.editing.sharding.Shards`); returns the summary on
    the main process, else None. ``make_pipeline(device)`` loads the pipeline onto that device."""
    with Shards() as shards:
        cases = shards.decide(lambda: read_cases(cases_path))
        pipe = make_pipeline(shards.device)
        rows = []
        for case in shards.share(cases):
            try:
                row = edit_case(pipe, case, Path(cases_path).parent, out, **settings)
            except (ValueError, OSError) as error:  # one bad case must not stop the others: it is reported
                row = {"id": case["id"], "error": f"{type(error).__name__}: {error}"}
            rows.append({**row, "process": shards.index})
        rows = shards.gather(rows)
    if not shards.is_main:
        return None
    write_jsonl(Path(out) / "results.jsonl", rows)
    done = [row for row in rows if "error" not in row]
    summary = {**(summarize(done) if done else {"cases": 0}), "failed": len(rows) - len(done),
               "processes": shards.count, "settings": settings}
    write_json(Path(out) / "summary.json", summary)
    return summary
