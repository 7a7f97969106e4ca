"""Mask-guided (blended) editing for the inversion-based recipe (Avrahami et al., "Blended Latent Diffusion",
SIGGRAPH 2023), with any solver.

The user marks where the edit may change the image: a boolean mask [H, W] at the image's resolution (True = may
change). The inversion keeps its trajectory x_inv(t_i); after every denoising step the unedited cells go back onto it:

    x(t_{i+1}) <- m * x(t_{i+1}) + (1 - m) * x_inv(t_{i+1}),     m = 1 on editable latent cells, 0 elsewhere,

so outside the mask the latents retrace the inversion and end on the source latents exactly, while inside it the
edit runs as usual and sees the kept surroundings through attention. The blend is a selection (``torch.where``), so
m = 0 everywhere returns the source latents bit for bit and m = 1 everywhere the unmasked edit bit for bit. It costs
no model evaluation. FireFlow's reused velocity is left as the step computed it: after the blend it is off by the
blend's displacement in the unedited cells, which the next step's midpoint evaluation corrects.

**From pixels to latent cells.** The mask is centre-cropped exactly as the image is (to the model's size multiple),
then pooled over each latent cell: ``adapter.mask_cell`` pixels on a side, the pixels one latent pixel covers (FLUX
and SD3: 8x8, the mini FLUX 4x4; FLUX's tokens pack 2x2 latent pixels, each blended on its own). ``rule`` decides a
cell:

- ``"any"`` (default): editable if any of its pixels is; nothing the user marked is frozen, but around a small
  object a whole cell of background may change;
- ``"half"``: editable if at least half of its pixels are;
- ``"all"``: editable only if all of its pixels are; nothing unmarked changes in latent space, but an edit whose
  region is thinner than a cell cannot happen at all.

The decoder spreads each latent cell over its neighbours' pixels too, so even a frozen cell's pixels can move by
the decoder's reach near the mask's border.

**Modes** (``mode``): ``"blend"`` (default) is the latent blend above. ``"paste"`` runs the unmasked edit and,
after decoding, gives every pixel outside the mask the source's own value: the composite inpainting pipelines
apply last (diffusers' ``apply_overlay``), so nothing unmarked changes at all, but the edit never sees the mask
and may leave a seam where what it drew leaves the mask. ``"blend+paste"`` does both. A background PSNR measured
on the same mask is exact by construction under either paste, so it says nothing about the method there.
``"blend+fit"`` is the blend followed by Blended Latent Diffusion's background reconstruction (its section 4.3),
here on the latents rather than the decoder's weights: from the blended latents z_e, ``FIT_STEPS`` Adam steps on

    L(z) = mean(m_px * (D(z) - D(z_e))^2) + mean((1 - m_px) * (D(z) - x_source)^2),     m_px the pixel mask,

so the decoded image keeps the edit inside the mask and comes back to the source's pixels outside it, through
the decoder (its reach and its loss included, so never exact). It costs no transformer call but ``FIT_STEPS``
decoder passes with their gradients: at FLUX's 1024 x 1024 that is the memory of training the VAE's decoder.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from .images import crop_to_multiple

MASK_RULES = ("any", "half", "all")
MASK_MODES = ("blend", "paste", "blend+paste", "blend+fit")
FIT_STEPS, FIT_LR = 50, 0.05  # chosen on the mini FLUX's first 40 edit cases (benchmarks/mini_flux.json has 200)


def check_rule(rule: str | None, mode: str = "blend") -> str | None:
    """``rule`` for a mask used in ``mode`` (None: "any" when blending); a clear error for a bad pair."""
    if mode not in MASK_MODES:
        raise ValueError(f"mask_mode must be one of {', '.join(MASK_MODES)}, got {mode!r}")
    if "blend" not in mode:
        if rule is not None:
            raise ValueError(f"mask_rule maps the mask to latent cells for blending; mask_mode {mode!r} does not "
                             "blend: leave mask_rule out, or use mask_mode 'blend+paste'")
        return None
    rule = "any" if rule is None else rule
    if rule not in MASK_RULES:
        raise ValueError(f"mask_rule must be one of {', '.join(MASK_RULES)}, got {rule!r}")
    return rule


def check_mask(mask, image_size) -> np.ndarray:
    """``mask`` as a boolean [H, W] array of the image's size (before cropping); a clear error otherwise."""
    array = np.asarray(mask)
    if array.dtype != bool:
        raise ValueError(f"mask must be a boolean [H, W] array (True = may change), got dtype {array.dtype}; "
                         "from an image use np.asarray(mask_image.convert('L')) > 0")
    if array.shape != tuple(image_size):
        raise ValueError(f"mask is {list(array.shape)}, but the image is [H, W] = {list(image_size)}: give the mask "
                         "at the image's own size (it is cropped as the image is)")
    return array


def cropped_mask(adapter, inversion, mask) -> np.ndarray:
    """A user's mask, checked against the size of the image ``inversion`` inverted and cropped as that image was."""
    return crop_to_multiple(check_mask(mask, inversion.settings["image_size"]), adapter.size_multiple)


def paste(source: np.ndarray, edited: np.ndarray, cropped: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3]: ``edited`` inside the mask, ``source`` everywhere else (all three cropped alike)."""
    return np.where(cropped[..., None], edited, source)


def fit_background(adapter, latents: torch.Tensor, source: np.ndarray, cropped: np.ndarray, steps: int = FIT_STEPS,
                   lr: float = FIT_LR, progress: bool = False) -> torch.Tensor:
    """Latents like ``latents`` whose decoded image keeps their own inside ``cropped`` [H, W] and ``source``
    (uint8 [H, W, 3]) outside it: the loss of the module docstring, minimised with Adam from ``latents``."""
    height, width = cropped.shape
    device = latents.device
    inside = torch.from_numpy(cropped).to(device)[None, None].float()
    wanted = torch.as_tensor(np.array(source), device=device).permute(2, 0, 1)[None].float() / 127.5 - 1
    z = latents.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    with torch.no_grad():
        edited = adapter.decode_float(z, height, width)
    with torch.enable_grad():
        for _ in tqdm(range(steps), desc="fit background", disable=not progress, leave=False):
            decoded = adapter.decode_float(z, height, width)
            loss = (inside * (decoded - edited) ** 2).mean() + ((1 - inside) * (decoded - wanted) ** 2).mean()
            if not torch.isfinite(loss):  # a half-precision decoder's backward can overflow
                raise FloatingPointError(f"the background fit's loss became {loss.item()}: run the VAE in "
                                         "float32 (pipe.vae.to(torch.float32)), or use mask_mode 'blend'")
            # the gradient of z alone: the decoder's weights are the model's, never trained here
            (z.grad,) = torch.autograd.grad(loss, z)
            optimizer.step()
    return z.detach()


def latent_cells(mask: np.ndarray, cell: int, rule: str = "any") -> np.ndarray:
    """Boolean [H / cell, W / cell]: which latent cells of a cropped pixel mask [H, W] are editable under ``rule``."""
    check_rule(rule)
    h, w = mask.shape
    if h % cell or w % cell:
        raise ValueError(f"a cropped mask of {w}x{h} pixels does not tile into {cell}x{cell} latent cells")
    share = mask.reshape(h // cell, cell, w // cell, cell).mean(axis=(1, 3))
    return {"any": share > 0, "half": share >= 0.5, "all": share == 1}[rule]


class LatentBlend:
    """The solver loop's ``project`` for a masked denoising pass: editable cells keep the new state, the others
    take the inversion's state at the same grid point.

    Args:
        editable: boolean tensor broadcastable to the latents (the adapter's layout of the cell mask).
        trajectory: the inversion's states [N + 1, *latents.shape], from t = 0 to t = 1.
    """

    def __init__(self, editable: torch.Tensor, trajectory: torch.Tensor):
        self.editable = editable
        self.trajectory = trajectory
        self.num_steps = len(trajectory) - 1

    @classmethod
    def from_mask(cls, adapter, inversion, cropped: np.ndarray, rule: str = "any") -> LatentBlend:
        """The blend of a cropped pixel mask (:func:`cropped_mask`) for a denoising pass from ``inversion``."""
        if inversion.trajectory is None:
            raise ValueError("this inversion kept no trajectory (saved by an older version): invert again to edit "
                             "with a mask")
        cells = latent_cells(cropped, adapter.mask_cell, rule)  # which checks the rule
        return cls(adapter.latent_mask(cells).to(inversion.trajectory.device), inversion.trajectory)

    @property
    def editable_share(self) -> float:
        """The share of latent cells the edit may change."""
        return float(self.editable.float().mean())

    def __call__(self, index: int, t_next: float, x_next: torch.Tensor) -> torch.Tensor:
        # denoising step ``index`` ends at grid point index + 1, which the inversion passed at its step N - 1 - index
        kept = self.trajectory[self.num_steps - 1 - index]
        return torch.where(self.editable, x_next, kept.to(x_next.dtype))
