"""Attention-feature caching and injection for editing (the reference FireFlow / RF-Solver-Edit recipe), for any
model family: the family's adapter says which attention blocks take part (FLUX's single-stream blocks, SD3's joint
blocks) and its velocity field, a :class:`StepAware`, tells the features where the solver is.

During inversion of the source image, the self-attention features of those blocks are stored; during denoising
with the target prompt they are injected, so the edit keeps the source's layout. Both happen on the same
intervals of the sampling grid: the first ``inject`` denoising steps (nearest the
noise) and the inversion steps over those intervals, the last ``inject`` of the
inversion. Features are keyed by (interval, stage, block), where stage is "start"
(an evaluation at a grid point) or "mid" (at a half step), never by float time.

Strategies (the paper's Table 6), joined with "+" (e.g. "replace_v+add_k"):

- ``replace_v``: V <- V_source (the headline method);
- ``add_q`` / ``add_k`` / ``add_v``: Q <- Q + Q_source, and likewise for K and V.

Q and K are taken after QK-norm and before RoPE, V as projected: forward hooks on each
attention module's ``norm_q``, ``norm_k`` and ``to_v`` (:func:`feature_hooks`) see exactly those tensors, so
diffusers' own attention processors (and whichever attention backend they dispatch to) run unchanged. In
FLUX's single-stream blocks they span the full sequence (text + image tokens): Q and K [B, S, heads, head_dim],
V [B, S, heads x head_dim]; in SD3's joint blocks the image tokens.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager
from functools import partial

import torch

STRATEGY_TERMS = ("replace_v", "add_q", "add_k", "add_v")


def parse_strategy(strategy: str) -> tuple[str, ...]:
    """Split and validate a strategy such as "replace_v" or "add_q+add_k"."""
    terms = tuple(term.strip() for term in str(strategy).split("+"))
    unknown = [term for term in terms if term not in STRATEGY_TERMS]
    if unknown or not terms:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGY_TERMS)} "
                         "or several joined with '+', e.g. 'replace_v+add_k'")
    if "replace_v" in terms and "add_v" in terms:
        raise ValueError("replace_v and add_v both set V: choose one")
    if len(set(terms)) != len(terms):
        raise ValueError(f"strategy {strategy!r} repeats a term")
    return terms


class AttentionFeatures:
    """Stores source features during inversion and injects them during denoising.

    Args:
        strategy: see the module docstring.
        inject: number of intervals (steps nearest the noise) that store and inject.
        blocks: indices of the single-stream blocks taking part.
        storage_device: where stored tensors live ("cpu" saves GPU memory; None keeps them in place).
    """

    def __init__(self, strategy: str, inject: int, blocks: Iterable[int], storage_device: str | None = None):
        self.terms = parse_strategy(strategy)
        self.inject = inject
        self.blocks = tuple(blocks)
        self.storage_device = storage_device
        self.mode = "off"
        self.key: tuple[int, str] | None = None
        self.stored: dict[tuple[int, str, int], dict[str, torch.Tensor]] = {}
        self.injected: set[tuple[int, str, int]] = set()

    @property
    def names(self) -> tuple[str, ...]:
        """Which of q, k, v are stored: the ones a strategy term touches."""
        return tuple(sorted({term[-1] for term in self.terms}))

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for feats in self.stored.values() for t in feats.values())

    @property
    def injections(self) -> int:
        """Block calls that received stored features since the last :meth:`clear_injections`."""
        return len(self.injected)

    def clear_injections(self) -> None:
        self.injected.clear()

    def at(self, interval: int, stage: str, mode: str) -> None:
        """Called by the velocity adapter before each transformer call: where it is and whether it stores
        (inversion) or injects (denoising)."""
        self.key = (interval, stage) if interval < self.inject else None
        self.mode = mode

    def process(self, block: int, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """Store or inject feature ``name`` ("q", "k" or "v") of ``block``; returns what the block goes on with."""
        if self.key is None or self.mode == "off":
            return tensor
        key = (*self.key, block)
        if self.mode == "store":
            self.stored.setdefault(key, {})[name] = tensor.detach().to(self.storage_device or tensor.device)
            return tensor
        source = self.stored.get(key)
        if source is None:  # no inversion twin (FireFlow's reused start velocity is never evaluated)
            return tensor
        self.injected.add(key)
        return inject(self.terms, name, tensor, source[name])


def inject(terms: tuple[str, ...], name: str, current: torch.Tensor, stored: torch.Tensor) -> torch.Tensor:
    """Feature ``name`` after the strategy ``terms``: replace_v gives the stored V, add_x adds the stored X.

    A stored tensor with one row serves a batch of two (both classifier-free guidance branches).
    """
    stored = stored.to(current.device, current.dtype)
    if stored.shape[0] != current.shape[0]:
        stored = stored.expand_as(current)
    for term in terms:
        if term[-1] == name:
            current = stored if term == "replace_v" else current + stored
    return current


HOOKED = {"q": ("norm_q", "to_q"), "k": ("norm_k", "to_k"), "v": ("to_v",)}  # QK-norm when the model has one


def _hook(features: AttentionFeatures, block: int, name: str, module, inputs, output):
    return features.process(block, name, output)


@contextmanager
def feature_hooks(attentions: dict[int, torch.nn.Module], features: AttentionFeatures):
    """Forward hooks that let ``features`` see (and change) Q after QK-norm, K after QK-norm and V, in each
    attention module of ``attentions`` (block index: module); always removed after, also after an error."""
    handles = []
    try:
        for block, attention in attentions.items():
            for name in features.names:
                module = next(getattr(attention, n) for n in HOOKED[name] if getattr(attention, n, None) is not None)
                handles.append(module.register_forward_hook(partial(_hook, features, block, name)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def resolve_blocks(blocks: Iterable[int] | range | None, count: int, kind: str = "single-stream") -> tuple[int, ...]:
    """Validate indices into a model's ``count`` feature blocks of ``kind`` (None = all)."""
    chosen = tuple(range(count)) if blocks is None else tuple(int(b) for b in blocks)
    bad = [b for b in chosen if not 0 <= b < count]
    if bad or not chosen:
        raise ValueError(f"blocks must be indices of {kind} blocks in 0..{count - 1}, got {list(blocks)}")
    return chosen


class StepAware:
    """Step bookkeeping shared by the families' velocity fields, and their feature keys.

    :func:`~fireflow_edu.solvers.integrate` calls :meth:`begin_step` before each step; each evaluation is then
    at the step's start, at its midpoint, or (a measurement such as :func:`~fireflow_edu.analysis.reuse_error`)
    at its end, which is the next step's start. Features are keyed by the interval along the sampling direction,
    so an inversion step and the denoising step over the same interval meet.
    """

    def __init__(self, timesteps, features=None, varies_per_step: bool = False):
        self.num_steps = len(timesteps) - 1
        self.features = features
        self.varies_per_step = varies_per_step
        self.step: tuple[int, float, float] | None = None  # (index, t, t_next) of the current step

    def begin_step(self, index: int, t: float, t_next: float) -> None:
        self.step = (index, t, t_next)

    def locate(self, t: float) -> int:
        """The interval of an evaluation at ``t``, counted from the noise end (0 = the step leaving t = 1).

        Tells the features where they are and what to do. Anything given per step (features, guidance lists)
        is indexed by this interval, so an inversion pass and a denoising pass agree on which value belongs to
        which stretch of the time axis, whichever way they walk it.
        """
        if self.step is None:
            if self.features is not None or self.varies_per_step:
                raise ValueError(f"this {type(self).__name__} injects features or varies guidance per step, so it "
                                 "needs to know the step: drive it with fireflow_edu.solvers.integrate or solve")
            return 0
        index, start, end = self.step
        if t == start:
            step, stage = index, "start"
        elif t == end:  # the next step's start
            step, stage = min(index + 1, self.num_steps - 1), "start"
        else:
            step, stage = index, "mid"
        inverting = end > start
        interval = self.num_steps - 1 - step if inverting else step
        if self.features is not None:
            self.features.at(interval, stage, "store" if inverting else "inject")
        return interval
