"""A detector on the renderer's own terms: which background, how many objects, their colours and shapes.

Background: the median border pixel's nearest palette colour. Objects: connected
regions that differ from the background (by more than 60 in RGB distance and at
least 8 pixels), each given the nearest object colour (median pixel) and the shape
whose rendered mask, at the region's centroid and area, overlaps it best (IoU).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from .scenes import BACKGROUNDS, OBJECT_COLORS, SHAPES, Scene, Shape

# what is wrong with a drawing, in the order composition_error tests them
COMPOSITION_ERRORS = ("count", "colour", "binding", "shape", "background")
FOREGROUND_DISTANCE = 60.0
MIN_PIXELS = 8
RADII = np.arange(2.5, 12.01, 0.25)


def _nearest(rgb: np.ndarray, palette: dict) -> str:
    names = list(palette)
    distances = [np.linalg.norm(rgb - np.array(palette[n], float)) for n in names]
    return names[int(np.argmin(distances))]


def palette_classes(image: np.ndarray) -> np.ndarray:
    """int [H, W]: each pixel's nearest colour among the backgrounds and object colours (in that order)."""
    palette = np.array([*BACKGROUNDS.values(), *OBJECT_COLORS.values()], float)
    return np.argmin(((np.asarray(image, float)[..., None, :] - palette) ** 2).sum(-1), -1)


def kept_share(source: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> float:
    """The share of pixels outside ``mask`` [H, W] whose palette colour the edit left as it was in ``source``."""
    keep = ~np.asarray(mask, bool)
    return float((palette_classes(source) == palette_classes(edited))[keep].mean())


@lru_cache(maxsize=None)
def _areas(kind: str, size: int) -> np.ndarray:
    return np.array([Shape(kind, "red", size / 2, size / 2, r).mask(size).sum() for r in RADII])


@dataclass
class DetectedObject:
    color: str
    shape: str
    iou: float
    pixels: int


@dataclass
class Detection:
    background: str
    objects: list[DetectedObject]


def detect(image: np.ndarray) -> Detection:
    """Read background, objects, colours and shapes off a uint8 [H, W, 3] image."""
    pixels = np.asarray(image, dtype=float)
    size = pixels.shape[0]
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = _nearest(np.median(border, 0), BACKGROUNDS)
    foreground = np.linalg.norm(pixels - np.array(BACKGROUNDS[background], float), axis=-1) > FOREGROUND_DISTANCE
    labels, count = ndimage.label(foreground)
    objects = []
    for index in range(1, count + 1):
        region = labels == index
        area = int(region.sum())
        if area < MIN_PIXELS:
            continue
        color = _nearest(np.median(pixels[region], 0), OBJECT_COLORS)
        ys, xs = np.nonzero(region)
        cx, cy = xs.mean() + 0.5, ys.mean() + 0.5
        best = ("", 0.0)
        for kind in SHAPES:
            closest = int(np.argmin(np.abs(_areas(kind, size) - area)))
            for radius in RADII[max(0, closest - 4):closest + 5]:  # pixel-grid areas jump: search nearby radii
                template = Shape(kind, color, cx, cy, float(radius)).mask(size)
                iou = (template & region).sum() / max(1, (template | region).sum())
                best = max(best, (kind, float(iou)), key=lambda b: b[1])
        objects.append(DetectedObject(color, best[0], best[1], area))
    return Detection(background, objects)


def check_scene(image: np.ndarray, scene: Scene) -> dict[str, bool]:
    """Whether ``image`` shows ``scene``'s caption: background, object count, colours, (colour, shape) pairs, all
    four, and (``kinds``) the shapes alone, whatever their colours."""
    found = detect(image)
    wanted = [(o.color, o.kind) for o in scene.objects]
    got = [(o.color, o.shape) for o in found.objects]
    result = {
        "background": found.background == scene.background,
        "count": len(got) == len(wanted),
        "colors": Counter(c for c, _ in got) == Counter(c for c, _ in wanted),
        "shapes": Counter(got) == Counter(wanted),
    }
    result["all"] = all(result.values())
    result["kinds"] = Counter(s for _, s in got) == Counter(s for _, s in wanted)
    return result


def composition_error(check: dict[str, bool]) -> str | None:
    """The first of :data:`COMPOSITION_ERRORS` a :func:`check_scene` result shows (None: the image is right).

    ``binding``: the right number of objects, colours and shapes, paired otherwise than the caption pairs them
    ("a red square and a blue circle" for "a red circle and a blue square"); ``shape``: a shape that is not in the
    caption at all."""
    if check["all"]:
        return None
    if not check["count"]:
        return "count"
    if not check["colors"]:
        return "colour"
    if not check["shapes"]:
        return "binding" if check["kinds"] else "shape"
    return "background"


def composition(checks: list[dict[str, bool]], scenes: list[Scene]) -> dict[str, float]:
    """Captions drawn fully right among those naming one object (``one_all``) and two (``two_all``), and the share
    of the two-object captions failing on each of :data:`COMPOSITION_ERRORS` (``two_count``, ``two_binding``, ...)."""
    def share(values):
        return float(np.mean(values)) if values else float("nan")

    two = [composition_error(c) for c, s in zip(checks, scenes) if len(s.objects) == 2]
    return {"one_all": share([c["all"] for c, s in zip(checks, scenes) if len(s.objects) == 1]),
            "two_all": share([e is None for e in two]),
            **{f"two_{kind}": share([e == kind for e in two]) for kind in COMPOSITION_ERRORS}}
