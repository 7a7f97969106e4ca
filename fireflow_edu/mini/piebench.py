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


def write_mini_piebench(folder: Path, per_kind: int = 10) -> int:
    """Write ``per_kind`` cases of each edit kind into ``folder``; returns the number of cases.

    Every case has a scene of its own (seed ``i * len(EDIT_KINDS) + kind``): no source image is shared
    between kinds or cases.
    """
    from PIL import Image

    if per_kind < 1:
        raise ValueError(f"per_kind must be a positive integer, got {per_kind}")
    folder = Path(folder)
    mapping = {}
    for k, kind in enumerate(EDIT_KINDS):
        type_id = KIND_TYPES[kind]
        for i in range(per_kind):
            case = make_edit(SEEDS[i * len(EDIT_KINDS) + k], kind)
            key = f"{type_id}{i:011d}"
            image_path = f"{type_id}_{kind}/{key}.png"
            (folder / "annotation_images" / image_path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(case.source.render()).save(folder / "annotation_images" / image_path)
            original, editing = bracketed(case.source.caption, case.target.caption)
            mapping[key] = {"image_path": image_path, "original_prompt": original, "editing_prompt": editing,
                            "editing_instruction": f"{EDITING_TYPES[type_id]}: {case.target.caption}",
                            "editing_type_id": type_id, "blended_word": blended_words(original, editing),
                            "mask": encode_mask(case.mask)}
    write_json(folder / "mapping_file.json", mapping)
    return len(mapping)
