"""PIE-Bench (Ju et al. 2024) run the way the published numbers were made: PnPInversion's ``evaluate.py``.

A PIE-Bench folder holds ``mapping_file.json`` and ``annotation_images/``. Each entry of the mapping has
``image_path`` (under annotation_images), ``original_prompt`` and ``editing_prompt`` with the edited words in
``[brackets]`` (the reference removes the brackets before use, and so do we), ``editing_instruction``,
``editing_type_id`` ("0" to "9", :data:`EDITING_TYPES`), ``blended_word`` and ``mask``: (start, length) runs
over the row-major flattened image marking the region to edit. After decoding, the reference sets the mask's
one-pixel border to 1 "to avoid annotation errors in boundary"; :func:`decode_mask` does the same.

:func:`run_piebench` edits every case with one configuration, shards the cases across accelerate processes,
writes the edited images in the reference's layout (``OUT/annotation_images/<image_path>``, so its own
``evaluate.py`` can read them too), scores each image as read back from that file (JPEG for PIE-Bench's
``.jpg`` paths, as the published numbers were made) and writes one JSON per case (``OUT/cases/<key>.json``:
metrics, NFE, seconds). Keys and image paths become paths under OUT, so :func:`read_piebench` refuses any that
would leave it; every file is written through a temporary one renamed into place.
A rerun skips the cases already done (a case file that cannot be read, torn by a killed run, is said so and the
case done again); a case that fails is reported in ``OUT/errors.jsonl`` and skipped.
:func:`summarize` gives the per-type table in the paper's column order.
"""

from __future__ import annotations

import json
import statistics
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..reporting import output_name, write_atomically, write_json

EDITING_TYPES = {"0": "random", "1": "change object", "2": "add object", "3": "delete object",
                 "4": "change content", "5": "change pose", "6": "change color", "7": "change material",
                 "8": "change background", "9": "change style"}
REQUIRED = ("image_path", "original_prompt", "editing_prompt", "editing_type_id", "mask")
# (metric, scale, heading): the column order and units of the paper's Table 4 (and PnPInversion's tables)
COLUMNS = (("structure_distance", 1e3, "structure x1e3"), ("psnr_unedit", 1, "PSNR"),
           ("lpips_unedit", 1e3, "LPIPS x1e3"), ("mse_unedit", 1e4, "MSE x1e4"), ("ssim_unedit", 1e2, "SSIM x1e2"),
           ("clip_whole", 1, "CLIP whole"), ("clip_edited", 1, "CLIP edited"), ("nfe", 1, "NFE"),
           ("seconds", 1, "seconds"))


@dataclass(frozen=True)
class PieBenchCase:
    """One PIE-Bench entry, prompts without brackets."""

    key: str
    image_path: str
    image: Path
    source_prompt: str
    target_prompt: str
    editing_type: str
    instruction: str
    blended_word: str
    encoded_mask: tuple[int, ...]

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        return decode_mask(self.encoded_mask, shape)


def strip_brackets(prompt: str) -> str:
    """"a [red] cat" -> "a red cat", as the reference does (brackets removed, spaces kept)."""
    return prompt.replace("[", "").replace("]", "")


def decode_mask(encoded, shape: tuple[int, int] = (512, 512)) -> np.ndarray:
    """[H, W] float mask, 1 on the region to edit, from (start, length) runs over the flattened image.

    A run that passes the end is cut there; the border rows and columns are then set to 1 (the reference's rule).
    """
    if len(encoded) % 2:
        raise ValueError(f"a PIE-Bench mask is (start, length) pairs; got an odd count ({len(encoded)})")
    length = shape[0] * shape[1]
    mask = np.zeros(length)
    for start, run in zip(encoded[0::2], encoded[1::2]):
        mask[start:start + max(0, min(run, length - start))] = 1
    mask = mask.reshape(shape)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = 1
    return mask


def encode_mask(mask: np.ndarray) -> list[int]:
    """The (start, length) runs of a boolean [H, W] mask, flattened row-major: :func:`decode_mask`'s input."""
    flat = np.concatenate([[0], np.asarray(mask, dtype=np.int8).ravel(), [0]])
    edges = np.flatnonzero(np.diff(flat))
    return [int(v) for start, stop in zip(edges[0::2], edges[1::2]) for v in (start, stop - start)]


def read_piebench(folder: Path) -> list[PieBenchCase]:
    """The cases of a PIE-Bench folder, checked: every field present, every image on disk, known types, and each
    key a file name and each ``image_path`` a relative path without ``..``, used by one case only (both become
    paths under the output folder: :func:`~fireflow_edu.reporting.output_name`)."""
    folder = Path(folder)
    mapping = folder / "mapping_file.json"
    if not mapping.exists():
        raise FileNotFoundError(f"{mapping} not found: a PIE-Bench folder holds mapping_file.json and "
                                "annotation_images/")
    cases, owners = [], {}
    for key, entry in json.loads(mapping.read_text()).items():
        output_name(key, f"{mapping}: case key")
        missing = [name for name in REQUIRED if name not in entry]
        if missing:
            raise ValueError(f"{mapping}: case {key} lacks {', '.join(missing)}")
        output_name(entry["image_path"], f"{mapping}: case {key}'s image_path", folders=True)
        if entry["image_path"] in owners:  # the second edit would replace the first
            raise ValueError(f"{mapping}: case {key}'s image_path {entry['image_path']!r} is also case "
                             f"{owners[entry['image_path']]}'s; each case needs an image path of its own")
        owners[entry["image_path"]] = key
        if entry["editing_type_id"] not in EDITING_TYPES:
            raise ValueError(f"{mapping}: case {key} has editing_type_id {entry['editing_type_id']!r}; "
                             f"known: {', '.join(EDITING_TYPES)}")
        image = folder / "annotation_images" / entry["image_path"]
        if not image.exists():
            raise FileNotFoundError(f"{mapping}: case {key} names {image}, which is not there")
        cases.append(PieBenchCase(key, entry["image_path"], image, strip_brackets(entry["original_prompt"]),
                                  strip_brackets(entry["editing_prompt"]), entry["editing_type_id"],
                                  entry.get("editing_instruction", ""), entry.get("blended_word", ""),
                                  tuple(entry["mask"])))
    if not cases:
        raise ValueError(f"{mapping} holds no cases")
    return cases


def edit_piebench_case(pipe, case: PieBenchCase, scorer, out: Path, algorithm: str = "fireflow",
                       use_masks: bool = False, **settings) -> dict:
    """Edit one case with ``algorithm`` and its ``settings``, save the image in the reference's layout, read it back
    and score what was saved. ``use_masks`` hands the case's mask to the editor (the region it may change), as
    mask-guided methods such as KV-Edit report their numbers: a configuration of its own, not comparable with
    mask-free ones.

    The reference saves under the case's own ``image_path`` (``.jpg`` in PIE-Bench, so PIL writes JPEG at
    quality 75) and its ``evaluate.py`` scores the files it re-reads; so do we, so the JPEG step is in our
    numbers as it is in the published ones. A ``.png`` path is lossless. The image, then the case's JSON, are
    written atomically: a killed run leaves no torn file.
    """
    from PIL import Image

    from ..editing.algorithms import run_algorithm
    from ..editing.boundary import model_adapter

    source = np.asarray(Image.open(case.image).convert("RGB"))
    multiple = model_adapter(pipe).size_multiple
    if source.shape[0] % multiple or source.shape[1] % multiple:
        raise ValueError(f"{case.image} is {source.shape[1]}x{source.shape[0]}; PIE-Bench images are 512x512 "
                         f"(any multiple of {multiple} works, nothing is cropped)")
    target = out / "annotation_images" / case.image_path
    image_format = Image.registered_extensions().get(target.suffix.lower())  # the temporary name has no say
    if image_format is None:
        raise ValueError(f"case {case.key}: PIL saves no format under the suffix of {case.image_path!r}")
    if use_masks:
        settings["mask"] = case.mask(source.shape[:2]) > 0.5
    result = run_algorithm(algorithm, pipe, source, case.source_prompt, case.target_prompt, progress=False,
                           **settings)
    write_atomically(target, lambda temporary: result.image.save(temporary, format=image_format))
    with Image.open(target) as saved:
        edited = np.asarray(saved.convert("RGB"))
    row = {"key": case.key, "editing_type": case.editing_type, "nfe": result.nfe,
           "seconds": result.seconds["total"], **scorer.score(source, edited, case.mask(source.shape[:2]),
                                                               case.target_prompt)}
    write_json(out / "cases" / f"{case.key}.json", row)
    return row


def run_piebench(data: Path, out: Path, make_pipeline: Callable, make_scorer: Callable, progress: bool = False,
                 **settings) -> dict | None:
    """Edit and score every case not yet done, sharded over the processes (:mod:`~fireflow_edu.editing.sharding`).

    ``make_pipeline(device)`` and ``make_scorer(device)`` load onto the rank's device. The cases still to do are
    decided once, on the main process. Returns the summary (:func:`summarize`, also written to
    ``OUT/summary.json``) on the main process, else None.
    """
    from tqdm import tqdm

    from ..reporting import write_jsonl
    from ..editing.sharding import Shards

    out = Path(out)
    def plan():
        cases = read_piebench(data)
        return cases, [case for case in cases if finished_case(out / "cases" / f"{case.key}.json") is None]

    with Shards() as shards:
        cases, todo = shards.decide(plan)
        pipe, scorer = make_pipeline(shards.device), make_scorer(shards.device)
        errors = []
        for case in tqdm(shards.share(todo), desc="PIE-Bench", disable=not progress):
            try:
                edit_piebench_case(pipe, case, scorer, out, **settings)
            except (ValueError, OSError) as error:  # one bad case must not stop the others: it is reported
                errors.append({"key": case.key, "error": f"{type(error).__name__}: {error}",
                               "process": shards.index})
        failed = shards.gather(errors)
    if not shards.is_main:
        return None
    write_jsonl(out / "errors.jsonl", failed)
    rows = [row for case in cases if (row := finished_case(out / "cases" / f"{case.key}.json")) is not None]
    summary = {**summarize(rows), "failed": [row["key"] for row in failed], "absent": scorer.absent,
               "settings": settings, "processes": shards.count}
    write_json(out / "summary.json", summary)
    return summary


def finished_case(path: Path) -> dict | None:
    """The row of a finished case from its ``OUT/cases/<key>.json``; None if there is none, or (with a warning
    naming the file) if it cannot be read as one, as a run killed mid-write before writes were atomic left it."""
    if not path.exists():
        return None
    try:
        row = json.loads(path.read_text())
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError both are
        row, reason = None, str(error)
    else:
        reason = "" if isinstance(row, dict) else "not a JSON object"
    if reason:
        warnings.warn(f"{path} cannot be read ({reason}): its case counts as not done, so a run does it again",
                      stacklevel=2)
        return None
    return row


def summarize(rows: list[dict]) -> dict:
    """Mean of each metric per editing type and over all cases, scaled as the paper prints them.

    Metrics that are absent (None) everywhere stay None; a mean skips the cases where the reference gives
    "nan" (a mask covering the whole image or nothing).
    """
    def means(group):
        values = {}
        for metric, scale, _ in COLUMNS:
            present = [row[metric] for row in group if row.get(metric) is not None]
            values[metric] = statistics.fmean(present) * scale if present else None
        return {"cases": len(group), **values}

    types = sorted({row["editing_type"] for row in rows}, key=int)
    return {"by_type": {t: means([r for r in rows if r["editing_type"] == t]) for t in types},
            "all": means(rows) if rows else {"cases": 0}}


def configuration(summary: dict) -> str:
    """A run's configuration in a few words, from its summary's settings: the algorithm, the settings given, masks."""
    settings = dict(summary.get("settings", {}))
    words = [settings.pop("algorithm", "fireflow")]
    masks = settings.pop("use_masks", False)
    words += [f"{key} {value}" for key, value in settings.items() if value not in (None, "auto")]
    return ", ".join(words) + (" + PIE-Bench masks" if masks else "")


def compare_piebench(summaries: list[dict], markdown: bool = False) -> str:
    """One row per run (its :func:`configuration`), the all-cases means, metrics absent everywhere left out: the
    table that sets configurations side by side. Seconds are left out too: runs made at different times or on
    different machines do not compare by them; NFE is the cost that does."""
    columns = [c for c in COLUMNS if c[0] != "seconds" and any(s["all"].get(c[0]) is not None for s in summaries)]
    rows = [["configuration", "cases", *(title for _, _, title in columns)]]
    rows += [[configuration(s), str(s["all"]["cases"]),
              *("absent" if s["all"].get(m) is None else f"{s['all'][m]:.2f}" for m, _, _ in columns)]
             for s in summaries]
    if markdown:
        lines = ["| " + " | ".join(cells) + " |" for cells in rows]
        lines.insert(1, "|" + "---|" * len(rows[0]))
        return "\n".join(lines)
    width = max(len(row[0]) for row in rows)
    return "\n".join(f"{name:<{width}} {cases:>5} " + " ".join(f"{cell:>14}" for cell in cells)
                     for name, cases, *cells in rows)


def format_piebench(summary: dict, hide_absent: bool = False, markdown: bool = False) -> str:
    """The per-type table as text, one row per editing type and one for all cases.

    ``hide_absent`` leaves out the metrics absent everywhere (a narrower table; ``summary["absent"]`` says why);
    ``markdown`` writes it as a Markdown table (the README's, from a saved ``summary.json``).
    """
    columns = [c for c in COLUMNS if not (hide_absent and summary["all"].get(c[0]) is None)]
    all_cases = "**all**" if markdown else "all"
    named = [*((EDITING_TYPES[t], r) for t, r in summary["by_type"].items()), (all_cases, summary["all"])]
    rows = [["editing type", "cases", *(title for _, _, title in columns)]]
    rows += [[name, str(row["cases"]), *("absent" if row.get(m) is None else f"{row[m]:.2f}" for m, _, _ in columns)]
             for name, row in named]
    if markdown:
        lines = ["| " + " | ".join(cells) + " |" for cells in rows]
        lines.insert(1, "|" + "---|" * len(rows[0]))
    else:
        lines = [f"{name:<18} {cases:>5} " + " ".join(f"{cell:>14}" for cell in cells) for name, cases, *cells in rows]
    if summary.get("failed"):
        lines.append(f"failed cases (see errors.jsonl): {', '.join(summary['failed'])}")
    return "\n".join(lines)
