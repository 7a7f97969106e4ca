"""Attention-feature caching and injection for editing (the reference FireFlow / RF-Solver-Edit recipe).

During inversion of the source image, the self-attention features of FLUX's
single-stream blocks are stored; during denoising with the target prompt they are
injected, so the edit keeps the source's layout. Both happen on the same
intervals of the sampling grid: the first ``inject`` denoising steps (nearest the
noise) and the inversion steps over those intervals, the last ``inject`` of the
inversion. Features are keyed by (interval, stage, block), where stage is "start"
(an evaluation at a grid point) or "mid" (at a half step), never by float time.

Strategies (the paper's Table 6), joined with "+" (e.g. "replace_v+add_k"):

- ``replace_v``: V <- V_source (the headline method);
- ``add_q`` / ``add_k`` / ``add_v``: Q <- Q + Q_source, and likewise for K and V.

Q and K are taken after QK-norm and before RoPE; the tensors span the full
single-stream sequence (text + image tokens), shape [B, S, heads, head_dim].
"""

from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Iterable

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.transformers.transformer_flux import FluxAttnProcessor, _get_qkv_projections

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
        self.injections = 0

    @property
    def names(self) -> tuple[str, ...]:
        """Which of q, k, v are stored: the ones a strategy term touches."""
        return tuple(sorted({term[-1] for term in self.terms}))

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for feats in self.stored.values() for t in feats.values())

    def at(self, interval: int, stage: str, mode: str) -> None:
        """Called by the velocity adapter before each transformer call: where it is and whether it stores
        (inversion) or injects (denoising)."""
        self.key = (interval, stage) if interval < self.inject else None
        self.mode = mode

    def process(self, block: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        if self.key is None or self.mode == "off":
            return q, k, v
        key = (*self.key, block)
        if self.mode == "store":
            feats = {"q": q, "k": k, "v": v}
            self.stored[key] = {n: feats[n].detach().to(self.storage_device or feats[n].device) for n in self.names}
            return q, k, v
        source = self.stored.get(key)
        if source is None:  # no inversion twin (FireFlow's reused start velocity is never evaluated)
            return q, k, v
        self.injections += 1
        feats = {"q": q, "k": k, "v": v}
        for term in self.terms:
            name = term[-1]
            stored = source[name].to(feats[name].device, feats[name].dtype)
            if stored.shape[0] != feats[name].shape[0]:  # one stored row serves both classifier-free branches
                stored = stored.expand_as(feats[name])
            feats[name] = stored if term == "replace_v" else feats[name] + stored
        return feats["q"], feats["k"], feats["v"]


class FeatureAttnProcessor(FluxAttnProcessor):
    """FluxAttnProcessor for a single-stream block that lets :class:`AttentionFeatures` see Q, K, V.

    Same computation as the parent for single-stream blocks (no separate text
    stream, no output projection), with one hook after QK-norm and before RoPE.
    """

    def __init__(self, block: int, features: AttentionFeatures):
        super().__init__()
        self.block = block
        self.features = features

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
        if encoder_hidden_states is not None:
            raise ValueError("FeatureAttnProcessor is for single-stream blocks, which get no encoder_hidden_states")
        query, key, value = _get_qkv_projections(attn, hidden_states, None)[:3]
        query, key, value = (x.unflatten(-1, (-1, attn.head_dim)) for x in (query, key, value))
        query, key = attn.norm_q(query), attn.norm_k(key)
        query, key, value = self.features.process(self.block, query, key, value)
        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
            key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)
        out = dispatch_attention_fn(query, key, value, attn_mask=attention_mask,
                                    backend=self._attention_backend, parallel_config=self._parallel_config)
        return out.flatten(2, 3).to(query.dtype)


def resolve_blocks(blocks: Iterable[int] | range | None, count: int, kind: str = "single-stream") -> tuple[int, ...]:
    """Validate indices into a model's ``count`` feature blocks of ``kind`` (None = all)."""
    chosen = tuple(range(count)) if blocks is None else tuple(int(b) for b in blocks)
    bad = [b for b in chosen if not 0 <= b < count]
    if bad or not chosen:
        raise ValueError(f"blocks must be indices of {kind} blocks in 0..{count - 1}, got {list(blocks)}")
    return chosen


@contextmanager
def installed_processors(transformer, replacements: dict):
    """Install ``replacements`` (processor name: processor) for a block; always restore the originals."""
    originals = dict(transformer.attn_processors)
    transformer.set_attn_processor({**originals, **replacements})  # consumes the dict it is given
    try:
        yield
    finally:
        transformer.set_attn_processor(dict(originals))


def feature_processors(transformer, features: AttentionFeatures):
    """Install :class:`FeatureAttnProcessor` on the chosen single-stream blocks, for the block only."""
    return installed_processors(transformer, {f"single_transformer_blocks.{block}.attn.processor":
                                              FeatureAttnProcessor(block, features) for block in features.blocks})
