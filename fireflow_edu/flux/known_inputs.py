"""What a trained FLUX records about the inputs it learned, and the checks that read it.

A saved pipeline folder may hold ``known_inputs.json`` beside ``model_index.json`` (the mini FLUX's does, and
``mini-train`` writes one into every folder it saves)::

    {"image_size": [32, 32], "vocabulary": "closed"}

- ``"vocabulary": "closed"``: the model learned its word-level tokenizers' words and no others. Another word
  becomes the tokenizer's [UNK], a token no training caption held, so the conditioning means nothing the
  model learned: :func:`check_prompt` refuses such a prompt, naming the words and the vocabulary.
- ``"image_size": [height, width]``: every training image had this size. Another size gives the transformer
  more or fewer image tokens, at positions it never saw: :func:`warn_if_unknown_size` warns, naming the size
  it knows (a warning, not an error: the solvers still run, and a learner may want to see what comes out).

The folder is the one ``from_pretrained`` loaded (``pipe.config._name_or_path``); a pipeline built in memory,
FLUX.1-dev and the random-weight tiny models record nothing and are not checked.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

FILE = "known_inputs.json"


def known_inputs(pipe) -> dict:
    """The ``known_inputs.json`` of the folder ``pipe`` was loaded from, or {} if it has none."""
    folder = pipe.config.get("_name_or_path")
    path = Path(folder) / FILE if folder else None
    return json.loads(path.read_text()) if path is not None and path.is_file() else {}


def unknown_words(tokenizer, prompt: str) -> list[str]:
    """The words of ``prompt`` that a word-level ``tokenizer`` maps to its unknown token, in order, once each."""
    encoding = tokenizer.backend_tokenizer.encode(prompt, add_special_tokens=False)
    words = [prompt[start:stop] for token, (start, stop) in zip(encoding.ids, encoding.offsets)
             if token == tokenizer.unk_token_id]
    return list(dict.fromkeys(words))


def check_prompt(pipe, prompt: str) -> None:
    """A clear error if ``pipe`` records a closed vocabulary and ``prompt`` has words outside it."""
    if known_inputs(pipe).get("vocabulary") != "closed":
        return
    tokenizers = [pipe.tokenizer, pipe.tokenizer_2]
    unknown = list(dict.fromkeys(word for tokenizer in tokenizers for word in unknown_words(tokenizer, prompt)))
    if unknown:
        vocabulary = sorted(pipe.tokenizer.get_vocab(), key=pipe.tokenizer.get_vocab().get)
        known = [word for word in vocabulary if word not in pipe.tokenizer.all_special_tokens]
        raise ValueError(f"prompt {prompt!r} has words this model never learned: {', '.join(map(repr, unknown))} "
                         f"(its tokenizers would read each as {pipe.tokenizer.unk_token}, which no training caption "
                         f"held). It knows only these {len(known)} words: {' '.join(known)}")


def warn_if_unknown_size(pipe, height: int, width: int) -> None:
    """A warning if ``pipe`` records the image size it learned and ``height`` x ``width`` is another."""
    size = known_inputs(pipe).get("image_size")
    if size is None or [height, width] == list(size):
        return
    per_token = (2 * pipe.vae_scale_factor) ** 2  # a FLUX token is a 2x2 patch of latent pixels
    warnings.warn(f"this model learned {size[0]}x{size[1]} images (height x width) only; this one is {height}x{width} "
                  f"after cropping: {height * width // per_token} image tokens where it learned "
                  f"{size[0] * size[1] // per_token}, at positions it never saw, so expect a poor result. Resize the "
                  f"image to {size[0]}x{size[1]} first (PIL: image.resize(({size[1]}, {size[0]}))).", stacklevel=3)
