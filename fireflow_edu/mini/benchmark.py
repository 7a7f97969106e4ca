"""Scoring the mini FLUX against exact ground truth: analogues of the paper's Tables 2, 3, 4 and 6.

- Text to image (Table 2): images generated from held-out captions at guidance 2, read back
  by the detector (background, object count, colours, shapes); and FireFlow 10 at each guidance
  scale, to show what the distilled guidance embedding does.
- Reconstruction (Table 3): invert held-out renders and regenerate with the same caption;
  PSNR / SSIM / RMSE against the render, solvers at equal NFE.
- Editing (Tables 4 and 6): ground-truth edit cases of five kinds; background PSNR outside
  the edit mask (preservation), PSNR / SSIM against the ground-truth edited render,
  success (the detector finds the target caption in the edited image), per kind, the share of
  pixels outside the mask that keep their palette colour, and strict success: success with at
  least ``KEPT_FOR_STRICT`` of them kept (an edit that redraws the whole scene to fit the
  target caption succeeds, but not strictly). Beside the masked rows, the blend's ceiling under each rule
  (:func:`blend_ceiling`): what a latent blend would keep if the edit got every editable cell exactly right.

All scenes use ``TEST_SEEDS`` (:mod:`~fireflow_edu.mini.scenes`), which neither training nor its held-out
curve draws.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from tqdm import tqdm

from ..editing.algorithms import run_algorithm
from ..editing.api import generate, reconstruct
from ..editing.boundary import model_adapter
from ..editing.masks import latent_cells
from ..editing.metrics import PSNR_CAP, capped, masked_psnr, psnr, rmse_255, ssim
from .detect import COMPOSITION_ERRORS, check_scene, composition, detect, kept_share
from .scenes import EDIT_KINDS, SIZE, TEST_SEEDS, make_edit, random_scene

GENERATION = (("euler", 20), ("fireflow", 10))
GUIDANCE_SCALES = (1.0, 1.5, 2.0, 3.0, 4.0)
RECONSTRUCTION = (("euler", 9), ("rf_solver", 5), ("fireflow", 8), ("euler", 31), ("rf_solver", 15), ("fireflow", 30))
CEILING = "blend ceiling"  # an "algorithm" of this table alone: blend_ceiling, no model call but the autoencoder's
EDITING = (  # (label, algorithm, settings): the paper's solver settings, injection ~1/8 of the steps, then FireFlow's
    # peers at their authors' FLUX defaults (the paper's Table 4, ReFlow rows) and FireFlow 8 given the ground-truth
    # edit mask under each rule that maps it to latent cells (mask=True: the case's own mask)
    ("euler 28", "fireflow", dict(method="euler", steps=28, inject=4)),
    ("rf_solver 15", "fireflow", dict(method="rf_solver", steps=15, inject=2)),
    ("fireflow 8", "fireflow", dict(steps=8, inject=1)),
    ("fireflow 15", "fireflow", dict(steps=15, inject=2)),
    ("fireflow 8 add_q", "fireflow", dict(steps=8, inject=1, strategy="add_q")),
    ("fireflow 8 add_k", "fireflow", dict(steps=8, inject=1, strategy="add_k")),
    ("fireflow 8 no injection", "fireflow", dict(steps=8, inject=0)),
    ("rf_inversion 28", "rf_inversion", {}),
    ("flowedit 28, n_max 24", "flowedit", {}),
    ("fireflow 8 + mask (any)", "fireflow", dict(steps=8, inject=1, mask=True, mask_rule="any")),
    ("fireflow 8 + mask (half)", "fireflow", dict(steps=8, inject=1, mask=True, mask_rule="half")),
    ("fireflow 8 + mask (all)", "fireflow", dict(steps=8, inject=1, mask=True, mask_rule="all")),
    ("fireflow 8 + mask (paste)", "fireflow", dict(steps=8, inject=1, mask=True, mask_mode="paste")),
    ("fireflow 8 + mask (fit)", "fireflow", dict(steps=8, inject=1, mask=True, mask_mode="blend+fit")),
    ("ceiling of a blend (any)", CEILING, dict(mask_rule="any")),
    ("ceiling of a blend (half)", CEILING, dict(mask_rule="half")),
)
KEPT_FOR_STRICT = 0.97


# the paper's Table 4 (PIE-Bench on FLUX.1-dev): PSNR and SSIM x1e2 of the unedited region, by our row label;
# None: a row the table does not have (FlowEdit came out after it; masks are a configuration of their own)
PAPER_TABLE_4 = {"fireflow 8": (23.03, 82.49), "fireflow 15": (23.28, 82.82), "rf_solver 15": (22.90, 81.90),
                 "rf_inversion 28": (20.82, 71.92), "flowedit 28, n_max 24": None, "fireflow 8 + mask (any)": None,
                 "fireflow 8 + mask (half)": None, "fireflow 8 + mask (all)": None,
                 "fireflow 8 + mask (paste)": None, "fireflow 8 + mask (fit)": None}


def _mean(values) -> float:
    return float(statistics.fmean(values)) if values else float("nan")


def text_to_image(pipe, num_captions: int = 200, configs=GENERATION, guidance="auto",
                  progress: bool = True) -> dict:
    """Fraction of generated images whose detected content matches the caption, per attribute, and for one- and
    two-object captions apart with the two-object failures by kind (binding apart from shape:
    :func:`~fireflow_edu.mini.detect.composition`)."""
    results = {}
    scenes = [random_scene(TEST_SEEDS[i]) for i in range(num_captions)]
    for method, steps in configs:
        checks, ious, nfe = [], [], 0
        for i, scene in enumerate(tqdm(scenes, desc=f"generate {method} {steps}", disable=not progress)):
            image, nfe = generate(pipe, scene.caption, SIZE, SIZE, steps=steps, method=method, guidance=guidance,
                                  seed=i)
            checks.append(check_scene(np.asarray(image), scene))
            ious += [o.iou for o in detect(np.asarray(image)).objects]
        results[f"{method} {steps}"] = {"nfe": nfe, **{key: _mean([c[key] for c in checks]) for key in checks[0]},
                                        "iou": _mean(ious), **composition(checks, scenes)}
    return results


def guidance_sweep(pipe, num_captions: int = 200, scales=GUIDANCE_SCALES, progress: bool = True) -> dict:
    """Text-to-image accuracy (FireFlow 10 steps) at each distilled guidance scale: what the embedding learned."""
    return {str(g): text_to_image(pipe, num_captions, (("fireflow", 10),), g, progress)["fireflow 10"] for g in scales}


def reconstruction(pipe, num_images: int = 100, configs=RECONSTRUCTION, progress: bool = True) -> dict:
    """Invert and regenerate held-out renders with their captions, per config: mean image PSNR, SSIM, RMSE, and
    the solver's own share, the round trip's error in latent space as dB below the unit-variance latents
    (-20 log10 latent RMSE)."""
    results = {}
    for method, steps in configs:
        rows = []
        for scene in tqdm(reconstruction_scenes(num_images), desc=f"reconstruct {method} {steps}",
                          disable=not progress):
            out = reconstruct(pipe, scene.render(), scene.caption, steps=steps, method=method,
                              progress=False)
            rows.append((out.nfe, out.metrics["psnr"], out.metrics["ssim"], out.metrics["rmse_255"],
                         -20 * np.log10(max(out.metrics["latent_rmse"], 1e-5))))
        finite_psnr = [capped(r[1]) for r in rows]
        results[f"{method} {steps}"] = {"nfe": rows[0][0], "psnr": _mean(finite_psnr),
                                        "ssim": _mean([r[2] for r in rows]), "rmse_255": _mean([r[3] for r in rows]),
                                        "latent_db": _mean([r[4] for r in rows])}
    return results


def reconstruction_scenes(num_images: int) -> list:
    return [random_scene(TEST_SEEDS[10_000 + i]) for i in range(num_images)]


def autoencoder_round_trip(pipe, num_images: int = 100) -> float:
    """Mean PSNR of the autoencoder alone (encode, decode) on the reconstruction scenes: the ceiling of any
    reconstruction's image PSNR (infinite for the pixel design, which is lossless; counted as 100 dB)."""
    adapter = model_adapter(pipe)
    return _mean([capped(psnr(s.render(), adapter.decode(adapter.encode_image(s.render()), SIZE, SIZE)))
                  for s in reconstruction_scenes(num_images)])


def edit_cases(num_cases: int = 200) -> list:
    """``num_cases`` ground-truth edits, the five kinds in turn."""
    return [make_edit(TEST_SEEDS[20_000 + i], EDIT_KINDS[i % len(EDIT_KINDS)]) for i in range(num_cases)]


def blend_ceiling(pipe, case, mask_rule: str) -> np.ndarray:
    """uint8 [H, W, 3]: the most a latent blend under ``mask_rule`` can keep (:mod:`~fireflow_edu.editing.masks`):
    the cells it may edit hold the ground truth's own latents, as if the edit had got each of them exactly right,
    the others the source's, decoded together. What it loses, it loses to cells that mix what changes with what
    stays, and to a decoder that reads each latent cell with its neighbours."""
    adapter = model_adapter(pipe)
    source, truth = (adapter.encode_image(scene.render()) for scene in (case.source, case.target))
    editable = adapter.latent_mask(latent_cells(case.mask, adapter.mask_cell, mask_rule))  # SIZE needs no crop
    return adapter.decode(torch.where(editable, truth, source), SIZE, SIZE)


def score_edit(case, edited: np.ndarray) -> dict:
    """Preservation, fidelity to the ground truth, and success for one edited image."""
    source, truth = case.source.render(), case.target.render()
    success, kept = check_scene(edited, case.target)["all"], kept_share(source, edited, case.mask)
    return {"background_psnr": capped(masked_psnr(source, edited, case.mask)),
            "psnr_to_truth": capped(psnr(truth, edited)), "ssim_to_truth": ssim(truth, edited),
            "rmse_to_truth": rmse_255(truth, edited), "success": float(success), "kept": kept,
            "strict_success": float(success and kept >= KEPT_FOR_STRICT)}


def editing(pipe, num_cases: int = 200, configs=EDITING, progress: bool = True) -> dict:
    """Every edit config on the same cases: means overall, success rate per edit kind, NFE and seconds per edit."""
    cases = edit_cases(num_cases)
    results = {}
    for label, algorithm, settings in configs:
        scores, nfe, seconds = [], 0, []
        for case in tqdm(cases, desc=f"edit {label}", disable=not progress):
            if algorithm == CEILING:
                start = time.perf_counter()
                image, nfe = blend_ceiling(pipe, case, **settings), 0
                seconds.append(time.perf_counter() - start)
            else:
                given = {**settings, "mask": case.mask} if settings.get("mask") is True else settings
                out = run_algorithm(algorithm, pipe, case.source.render(), case.source.caption, case.target.caption,
                                    progress=False, **given)
                image, nfe = np.asarray(out.image), out.nfe
                seconds.append(out.seconds["total"])
            scores.append((case.kind, score_edit(case, image)))
        row = {"nfe": nfe, "seconds": _mean(seconds), **{key: _mean([s[key] for _, s in scores]) for key in scores[0][1]}}
        row["success_by_kind"] = {kind: _mean([s["success"] for k, s in scores if k == kind]) for kind in EDIT_KINDS}
        results[label] = row
    return results


def update_rows(pipe, results: dict, labels, progress: bool = True) -> dict:
    """A saved mini-bench ``results`` with the rows ``labels`` measured again on the same captions and cases (the
    same counts give the same ones): text-to-image rows by :data:`GENERATION` label ("fireflow 10"), editing rows
    by :data:`EDITING` label; each section keeps its configs' order."""
    generation = {f"{method} {steps}": (method, steps) for method, steps in GENERATION}
    editing_labels = [label for label, *_ in EDITING]
    unknown = [label for label in labels if label not in generation and label not in editing_labels]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; rows: {[*generation, *editing_labels]}")
    counts = results["counts"]
    drawn = text_to_image(pipe, counts["captions"], [generation[label] for label in generation if label in labels],
                          progress=progress)
    edited = editing(pipe, counts["edits"], [c for c in EDITING if c[0] in labels], progress)
    merged_drawn, merged_edited = {**results["text_to_image"], **drawn}, {**results["editing"], **edited}
    return {**results, "text_to_image": {label: merged_drawn[label] for label in generation if label in merged_drawn},
            "editing": {label: merged_edited[label] for label in editing_labels if label in merged_edited}}


def run_mini_benchmark(pipe, num_captions: int = 200, num_reconstructions: int = 100, num_edits: int = 200,
                       progress: bool = True) -> dict:
    embedded = pipe.transformer.config.guidance_embeds  # a teacher from mini-train --distill-steps 0 has none
    return {"text_to_image": text_to_image(pipe, num_captions, progress=progress),
            "guidance": guidance_sweep(pipe, num_captions, progress=progress) if embedded else {},
            "reconstruction": reconstruction(pipe, num_reconstructions, progress=progress),
            "autoencoder_psnr": autoencoder_round_trip(pipe, num_reconstructions),
            "editing": editing(pipe, num_edits, progress=progress),
            "counts": {"captions": num_captions, "reconstructions": num_reconstructions, "edits": num_edits}}


def format_mini_benchmark(results: dict) -> str:
    counts = results["counts"]
    lines = [f"Text to image ({counts['captions']} held-out captions; share the detector reads back correctly)",
             f"  {'solver':<14}{'NFE':>5}{'backgr.':>9}{'count':>8}{'colours':>9}{'shapes':>8}{'all':>7}"
             f"{'IoU':>7}"]
    for label, row in results["text_to_image"].items():
        lines.append(f"  {label:<14}{row['nfe']:>5}{row['background']:>9.1%}{row['count']:>8.1%}"
                     f"{row['colors']:>9.1%}{row['shapes']:>8.1%}{row['all']:>7.1%}{row['iou']:>7.3f}")
    lines += composition_lines(results["text_to_image"])
    if results["guidance"]:
        lines += ["\nGuidance (FireFlow 10 steps; the distilled guidance embedding at each scale)",
                  f"  {'guidance':<14}{'count':>8}{'colours':>9}{'shapes':>8}{'all':>7}"]
    for scale, row in results["guidance"].items():
        lines.append(f"  {scale:<14}{row['count']:>8.1%}{row['colors']:>9.1%}{row['shapes']:>8.1%}{row['all']:>7.1%}")
    lines += [f"\nReconstruction ({counts['reconstructions']} held-out renders; inversion + regeneration)",
              f"  {'solver':<14}{'NFE':>5}{'PSNR':>8}{'SSIM':>8}{'RMSE':>8}{'latent dB':>11}"]
    lines.append(f"  {'autoencoder':<14}{'-':>5}{results['autoencoder_psnr']:>8.2f}   (encode + decode alone: "
                 "the ceiling of the PSNR column)")
    for label, row in results["reconstruction"].items():
        lines.append(f"  {label:<14}{row['nfe']:>5}{row['psnr']:>8.2f}{row['ssim']:>8.3f}{row['rmse_255']:>8.2f}"
                     f"{row['latent_db']:>11.2f}")
    kinds = "".join(f"{k.replace('_', ' ')[:13]:>14}" for k in EDIT_KINDS)
    lines += [f"\nEditing ({counts['edits']} ground-truth cases; PSNR in dB; success = detector finds the target; "
              f"kept = pixels outside the mask keeping their colour; strict = success with >= {KEPT_FOR_STRICT:.0%} "
              "kept)",
              f"  {'config':<26}{'NFE':>5}{'bg PSNR':>9}{'PSNR gt':>9}{'SSIM gt':>9}{'success':>9}{'kept':>8}"
              f"{'strict':>8}{kinds}"]
    for label, row in results["editing"].items():
        by_kind = "".join(f"{row['success_by_kind'][k]:>14.0%}" for k in EDIT_KINDS)
        lines.append(f"  {label:<26}{row['nfe']:>5}{_background(row):>9}{row['psnr_to_truth']:>9.2f}"
                     f"{row['ssim_to_truth']:>9.3f}{row['success']:>9.1%}{_share(row, 'kept'):>8}"
                     f"{_share(row, 'strict_success'):>8}{by_kind}")
    return "\n".join(lines)


def _background(row: dict) -> str:
    # a paste copies the source outside the mask: identical pixels, nothing to average
    return "exact" if row["background_psnr"] >= PSNR_CAP else f"{row['background_psnr']:.2f}"


def _share(row: dict, key: str) -> str:
    return f"{row[key]:.1%}" if key in row else "-"  # rows measured before the column existed


def composition_lines(rows: dict) -> list[str]:
    """Text to image by object count, and what goes wrong with two objects (rows measured before this split have
    none: nothing to show)."""
    measured = {label: row for label, row in rows.items() if "two_all" in row}
    if not measured:
        return []
    errors = "".join(f"{kind:>12}" for kind in COMPOSITION_ERRORS)
    lines = ["\nComposition (fully right by object count; two-object captions failing on each, first failure counted)",
             f"  {'solver':<14}{'1 object':>10}{'2 objects':>11}{errors}"]
    for label, row in measured.items():
        shares = "".join(f"{row[f'two_{kind}']:>12.1%}" for kind in COMPOSITION_ERRORS)
        lines.append(f"  {label:<14}{row['one_all']:>10.1%}{row['two_all']:>11.1%}{shares}")
    return lines


def markdown_tables(results: dict) -> str:
    """The README's tables from a ``mini-bench`` result (``mini-bench --markdown``), so none is typed by hand."""
    counts = results["counts"]
    rows = [f"| text to image, {counts['captions']} captions | NFE | background | count | colours | shapes | all | "
            "shape IoU |", "|---|---|---|---|---|---|---|---|"]
    entries = [(f"{label} steps, guidance 2", row) for label, row in results["text_to_image"].items()]
    entries += [(f"fireflow 10 steps, guidance {scale}", row) for scale, row in results["guidance"].items()]
    for name, row in entries:
        iou = f"{row['iou']:.3f}" if "iou" in row else "-"
        rows.append(f"| {name} | {row['nfe']} | {row['background']:.1%} | {row['count']:.1%} | {row['colors']:.1%} | "
                    f"{row['shapes']:.1%} | {row['all']:.1%} | {iou} |")
    measured = {label: row for label, row in results["text_to_image"].items() if "two_all" in row}
    if measured:
        errors = " | ".join(f"two objects: {kind}" for kind in COMPOSITION_ERRORS)
        rows += ["", f"| composition, {counts['captions']} captions | one object right | two objects right | {errors} |",
                 "|---|---|---|" + "---|" * len(COMPOSITION_ERRORS)]
        for label, row in measured.items():
            shares = " | ".join(f"{row[f'two_{kind}']:.1%}" for kind in COMPOSITION_ERRORS)
            rows.append(f"| {label} steps, guidance 2 | {row['one_all']:.1%} | {row['two_all']:.1%} | {shares} |")
    rows += ["", f"| reconstruction, {counts['reconstructions']} images | NFE | PSNR | SSIM | latent dB |",
             "|---|---|---|---|---|",
             f"| autoencoder alone (encode, decode) | - | {results['autoencoder_psnr']:.2f} | - | - |"]
    for label, row in results["reconstruction"].items():
        rows.append(f"| {label} steps | {row['nfe']} | {row['psnr']:.2f} | {row['ssim']:.3f} | {row['latent_db']:.2f} |")
    kinds = " | ".join(k.replace("_", " ").replace("color", "colour") for k in EDIT_KINDS)
    rows += ["", f"| editing, {counts['edits']} cases | NFE | background PSNR | PSNR to truth | success | kept | "
             f"strict success | {kinds} |", "|---|---|---|---|---|---|---|" + "---|" * len(EDIT_KINDS)]
    for label, row in results["editing"].items():
        by_kind = " | ".join(f"{row['success_by_kind'][k]:.0%}" for k in EDIT_KINDS)
        rows.append(f"| {label} | {row['nfe']} | {_background(row)} | {row['psnr_to_truth']:.2f} | "
                    f"{row['success']:.1%} | {_share(row, 'kept')} | {_share(row, 'strict_success')} | {by_kind} |")
    peers = [label for label in PAPER_TABLE_4 if label in results["editing"]]
    if "rf_inversion 28" in peers:
        rows += ["", "| the paper's Table 4, ReFlow rows | NFE | paper: PSNR, unedited region (PIE-Bench, FLUX.1-dev) | "
                 "paper: SSIM x1e2 | mini: background PSNR | mini: success | mini: strict success |",
                 "|---|---|---|---|---|---|---|"]
        for label in peers:
            row, paper = results["editing"][label], PAPER_TABLE_4[label]
            psnr_paper, ssim_paper = ("-", "-") if paper is None else (f"{paper[0]:.2f}", f"{paper[1]:.2f}")
            rows.append(f"| {label} | {row['nfe']} | {psnr_paper} | {ssim_paper} | {_background(row)} | "
                        f"{row['success']:.1%} | {_share(row, 'strict_success')} |")
    return "\n".join(rows)
