"""Procedurally rendered, captioned scenes with exact ground-truth edits.

A scene is a background colour and one or two objects (shape, colour, centre,
radius). Centres lie on a grid of ``GRID`` pixels, the autoencoder's downsampling
factor (so an object's latent is the same pattern wherever it stands), and radii
take a few sizes. Captions come from a small grammar: "a red circle on a white
background", "a red circle and a blue star on a gray background". Everything is deterministic
given a seed. For each edit kind (as in PIE-Bench: change object, change colour,
change background, add object, remove object) the same layout is rendered before
and after, giving the ground-truth edited image and the edit-region mask.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from matplotlib.path import Path as PolygonPath
from scipy import ndimage

SIZE = 32
GRID = 4  # centre pitch in pixels (the mini FLUX autoencoder's downsampling factor)
RADII = {1: (6.0, 7.0, 8.0), 2: (5.0, 6.0)}  # object radii in pixels by object count (two must fit side by side)
OBJECT_COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
                 "yellow": (240, 210, 40), "purple": (140, 60, 190), "orange": (245, 140, 30)}
BACKGROUNDS = {"white": (245, 245, 245), "black": (20, 20, 20), "gray": (128, 128, 128), "pink": (255, 185, 205)}
SHAPES = ("circle", "square", "triangle", "star")
CAPTION_ORDERS = ("drawn", "left_to_right")  # how a caption lists two objects (in_caption_order)
EDIT_KINDS = ("change_object", "change_color", "change_background", "add_object", "remove_object")
VOCABULARY = ("a", "an", "and", "on", "background", *SHAPES, *OBJECT_COLORS, *BACKGROUNDS)
# Disjoint seed ranges: training draws from the first, held-out curves during training from the second,
# every reported table (mini-bench, README, mini PIE-Bench, notebooks) from the third.
TRAIN_SEEDS = range(0, 10**9)
VALIDATION_SEEDS = range(10**9, 2 * 10**9)
TEST_SEEDS = range(2 * 10**9, 3 * 10**9)


@dataclass(frozen=True)
class Shape:
    """One object: ``kind`` in SHAPES, ``color`` in OBJECT_COLORS, centre (x, y) and radius in pixels."""

    kind: str
    color: str
    x: float
    y: float
    radius: float

    def mask(self, size: int = SIZE) -> np.ndarray:
        """Boolean [size, size] coverage, tested at pixel centres."""
        ys, xs = np.mgrid[0:size, 0:size] + 0.5
        dx, dy = xs - self.x, ys - self.y
        r = self.radius
        if self.kind == "circle":
            return dx**2 + dy**2 <= r**2
        if self.kind == "square":
            return (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
        if self.kind == "triangle":
            angles = np.deg2rad([-90, 30, 150])
            radii = np.full(3, r * 1.1)
        elif self.kind == "star":
            angles = np.deg2rad(-90 + 36 * np.arange(10))
            radii = np.where(np.arange(10) % 2 == 0, r * 1.15, r * 0.5)
        else:
            raise ValueError(f"unknown shape {self.kind!r}; shapes: {', '.join(SHAPES)}")
        polygon = PolygonPath(np.stack([self.x + radii * np.cos(angles), self.y + radii * np.sin(angles)], 1))
        return polygon.contains_points(np.stack([xs.ravel(), ys.ravel()], 1)).reshape(size, size)


@dataclass(frozen=True)
class Scene:
    background: str
    objects: tuple[Shape, ...]

    @property
    def caption(self) -> str:
        things = " and ".join(f"{'an' if o.color[0] in 'aeiou' else 'a'} {o.color} {o.kind}" for o in self.objects)
        return f"{things} on a {self.background} background"

    def render(self, size: int = SIZE) -> np.ndarray:
        """uint8 [size, size, 3]; later objects are drawn over earlier ones."""
        image = np.empty((size, size, 3), np.uint8)
        image[:] = BACKGROUNDS[self.background]
        for obj in self.objects:
            image[obj.mask(size)] = OBJECT_COLORS[obj.color]
        return image


def _shape(rng: np.random.Generator, avoid: tuple[Shape, ...], radii: tuple[float, ...],
           size: int = SIZE) -> Shape | None:
    for _ in range(100):
        radius = float(rng.choice(radii))
        low, high = int(np.ceil((radius + 1.5) / GRID)), int((size - radius - 1.5) // GRID)
        x, y = GRID * rng.integers(low, high + 1, 2)
        if all((x - o.x) ** 2 + (y - o.y) ** 2 > (radius + o.radius + 2) ** 2 for o in avoid):
            taken = {o.color for o in avoid}
            color = str(rng.choice([c for c in OBJECT_COLORS if c not in taken]))
            return Shape(str(rng.choice(SHAPES)), color, float(x), float(y), radius)
    return None


def random_scene(seed: int, num_objects: int | None = None) -> Scene:
    """A scene determined by ``seed``: 1 or 2 objects (chosen by the seed unless given)."""
    rng = np.random.default_rng(seed)
    count = num_objects or int(rng.integers(1, 3))
    objects: tuple[Shape, ...] = ()
    while len(objects) < count:
        placed = _shape(rng, objects, RADII[count])
        objects = objects + (placed,) if placed is not None else ()  # no room left: lay out afresh
    return Scene(str(rng.choice(list(BACKGROUNDS))), objects)


def in_caption_order(scene: Scene, order: str = "drawn") -> Scene:
    """``scene`` with its objects listed in caption ``order``: as drawn (the world every shipped model learned, where
    the first object named is anywhere) or left to right (by centre x, then y), so a word's place in the caption
    says where its object stands. Objects never overlap, so the render is the same either way."""
    if order not in CAPTION_ORDERS:
        raise ValueError(f"caption order must be one of {', '.join(CAPTION_ORDERS)}, got {order!r}")
    if order == "drawn":
        return scene
    return replace(scene, objects=tuple(sorted(scene.objects, key=lambda o: (o.x, o.y))))


@dataclass(frozen=True)
class EditCase:
    """A ground-truth edit: source and target scenes with the same layout, and the region that changes."""

    kind: str
    seed: int
    source: Scene
    target: Scene

    @property
    def mask(self) -> np.ndarray:
        """Pixels that differ between source and target render, grown by one pixel (edge tolerance)."""
        changed = (self.source.render() != self.target.render()).any(-1)
        return ndimage.binary_dilation(changed, iterations=1)


def make_edit(seed: int, kind: str) -> EditCase:
    """The edit of ``kind`` on the scene of ``seed`` (each kind picks its own scene size)."""
    if kind not in EDIT_KINDS:
        raise ValueError(f"unknown edit kind {kind!r}; kinds: {', '.join(EDIT_KINDS)}")
    rng = np.random.default_rng([seed, EDIT_KINDS.index(kind)])
    if kind == "remove_object":
        source = random_scene(seed, 2)
        return EditCase(kind, seed, source, replace(source, objects=source.objects[:1]))
    if kind == "add_object":
        full = random_scene(seed, 2)
        return EditCase(kind, seed, replace(full, objects=full.objects[:1]), full)
    source = random_scene(seed, 1)
    obj = source.objects[0]
    if kind == "change_object":
        target = replace(source, objects=(replace(obj, kind=str(rng.choice([s for s in SHAPES if s != obj.kind]))),))
    elif kind == "change_color":
        new = str(rng.choice([c for c in OBJECT_COLORS if c != obj.color]))
        target = replace(source, objects=(replace(obj, color=new),))
    else:
        target = replace(source, background=str(rng.choice([b for b in BACKGROUNDS if b != source.background])))
    return EditCase(kind, seed, source, target)
