"""Does a mini FLUX's text side still tell shape words apart? T5 and pooled-CLIP distances between captions.

    python benchmarks/mini_text_collapse.py [MODEL ...]

MODEL: a mini FLUX folder (``save_pretrained``), a ``mini-train`` checkpoint (``OUT/checkpoint.pt``; its teacher
weights, on the shipped autoencoder's pipeline) or ``fresh`` (the text side at initialisation, seed 0). For each,
prints the RMS difference of the T5 token embeddings and of the pooled CLIP vector between captions that differ
only in the shape word ("a red circle / square / triangle / star on a gray background"), and the same for
captions that differ only in the colour word. Jointly trained text encoders let the shape words collapse
together while the colour words spread (benchmarks/mini_training.md). A few seconds per model.
"""

import sys
from itertools import combinations
from pathlib import Path

import torch

from fireflow_edu.mini.model import build_mini_pipeline, load_mini_pipeline
from fireflow_edu.mini.scenes import OBJECT_COLORS, SHAPES
from fireflow_edu.mini.train import encode

AUTOENCODER = Path(__file__).resolve().parent.parent / "data" / "mini_autoencoder"
GROUPS = {"shape": [f"a red {shape} on a gray background" for shape in SHAPES],
          "colour": [f"a {color} circle on a gray background" for color in list(OBJECT_COLORS)[:4]]}


def pipeline(model: str):
    if model == "fresh":
        return build_mini_pipeline(0, AUTOENCODER)
    if model.endswith(".pt"):
        pipe = build_mini_pipeline(0, AUTOENCODER)
        modules = torch.load(model, weights_only=False)["teacher"]["modules"]
        encoders = [pipe.text_encoder, pipe.text_encoder_2]
        if len(modules) == 3:  # the transformer and both text encoders trained
            for module, state in zip(encoders, modules[1:]):
                module.load_state_dict(state)
        return pipe
    return load_mini_pipeline(model)


def rms_between(x: torch.Tensor) -> float:
    """Mean over pairs of captions of the RMS difference of their embeddings."""
    return torch.stack([(x[i] - x[j]).pow(2).mean().sqrt() for i, j in combinations(range(len(x)), 2)]).mean().item()


for model in sys.argv[1:] or ["fresh"]:
    pipe = pipeline(model)
    with torch.no_grad():
        row = []
        for group, captions in GROUPS.items():
            tokens, pooled, _ = encode(pipe, captions)
            row.append(f"{group} words: T5 {rms_between(tokens):.3f}, pooled CLIP {rms_between(pooled):.3f}")
    print(f"{model}: " + "; ".join(row))
