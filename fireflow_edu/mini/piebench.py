"""A mini PIE-Bench: the mini FLUX's scene world written in PIE-Bench's own format.

Same files as the real benchmark (``mapping_file.json`` + ``annotation_images/``), so the PIE-Bench harness
(:mod:`fireflow_edu.piebench.harness`) runs end to end on a CPU and a learner can see the format: bracketed
prompts ("a [red] circle ..." / "a [blue] circle ..."), run-length masks from the renderer's exact changed
region, and the five edit kinds mapped to PIE-Bench's editing types. Scenes come from held-out seeds.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from ..piebench.harness import EDITING_TYPES, encode_mask
from ..reporting import write_json
from .scenes import EDIT_KINDS, TEST_SEEDS, make_edit

KIND_TYPES = {"change_object": "1", "add_object": "2", "remove_object": "3", "change_color": "6",
              "change_background": "8"}
SEEDS = TEST_SEEDS[100_000:]  # held out, apart from mini-bench's and the notebooks' seeds


def bracketed(source: str, target: str) -> tuple[str, str]:
    """Both captions with the words that differ between them in [brackets]."""
    a, b = source.split(), target.split()
    out_a, out_b = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        for words, lo, hi, out in ((a, i1, i2, out_a), (b, j1, j2, out_b)):
            if hi > lo:
                span = " ".join(words[lo:hi])
                out.append(span if op == "equal" else f"[{span}]")
    return " ".join(out_a), " ".join(out_b)


def blended_words(original: str, editing: str) -> str:
    """PIE-Bench's ``blended_word``: the bracketed spans of both prompts ("[an orange]" gives "an orange")."""
    return " ".join(re.findall(r"\[([^\]]+)\]", original) + re.findall(r"\[([^\]]+)\]", editing))


def _cases(per_kind: int):
    """(seed, kind, PIE-Bench type, key, image_path) of every case, in the mapping's order."""
    for k, kind in enumerate(EDIT_KINDS):
        type_id = KIND_TYPES[kind]
        for i in range(per_kind):
            key = f"{type_id}{i:011d}"
            yield SEEDS[i * len(EDIT_KINDS) + k], kind, type_id, key, f"{type_id}_{kind}/{key}.png"


def write_mini_piebench(folder: Path, per_kind: int = 10, overwrite: bool = False) -> int:
    """Write ``per_kind`` cases of each edit kind into ``folder``; returns the number of cases.

    Every case has a scene of its own (seed ``i * len(EDIT_KINDS) + kind``): no source image is shared
    between kinds or cases. Unless ``overwrite``, a folder that already holds ``mapping_file.json`` or any image
    it would write (a PIE-Bench, or a ``piebench`` run's edits) is refused before anything is written.
    """
    from PIL import Image

    if per_kind < 1:
        raise ValueError(f"per_kind must be a positive integer, got {per_kind}")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; give a folder")
    cases = list(_cases(per_kind))
    if not overwrite:
        if (folder / "mapping_file.json").exists():
            raise ValueError(f"{folder} already holds a PIE-Bench; pass --overwrite to write it again")
        taken = [path for *_, path in cases if (folder / "annotation_images" / path).exists()]
        if taken:
            raise ValueError(f"{folder} already holds {len(taken)} of the images it would write (e.g. "
                             f"annotation_images/{taken[0]}); pass --overwrite to replace them")
    mapping = {}
    for seed, kind, type_id, key, image_path in cases:
        case = make_edit(seed, kind)
        (folder / "annotation_images" / image_path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(case.source.render()).save(folder / "annotation_images" / image_path)
        original, editing = bracketed(case.source.caption, case.target.caption)
        mapping[key] = {"image_path": image_path, "original_prompt": original, "editing_prompt": editing,
                        "editing_instruction": f"{EDITING_TYPES[type_id]}: {case.target.caption}",
                        "editing_type_id": type_id, "blended_word": blended_words(original, editing),
                        "mask": encode_mask(case.mask)}
    write_json(folder / "mapping_file.json", mapping)
    return len(mapping)
