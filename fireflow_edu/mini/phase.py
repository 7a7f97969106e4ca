"""One training phase of the mini FLUX's chain (autoencoder, text encoders, teacher, student), written once.

Each phase is AdamW with a linear warm-up and a cosine decay of the learning rate, gradients clipped at norm 1,
one batch and loss per step (the loss under :func:`~fireflow_edu.mini.batches.autocast`: bfloat16 on a GPU),
held-out rows every ``eval_every`` steps and a checkpoint every ``checkpoint_every``. Its minutes count training
only, not the held-out evaluations, so two curves compare at equal training time however often each evaluates.
A phase's :meth:`Phase.state` is what a checkpoint holds of it; a rerun :meth:`Phase.load`\\ s it (from any
device) and goes on where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.optimization import get_cosine_schedule_with_warmup
from tqdm import tqdm

from .batches import autocast
from .train_config import differing_settings


class Phase:
    """Optimiser, learning-rate schedule, loss history and held-out curve of ``steps`` steps on ``modules``.

    The warm-up is capped at a tenth of the steps (+ 1), so a short run still reaches its peak learning rate.
    """

    def __init__(self, name: str, modules: list[torch.nn.Module], steps: int, lr: float, warmup: int,
                 weight_decay: float = 0.01):
        self.name, self.steps = name, steps
        self.modules = modules
        self.params = [p for m in modules for p in m.parameters()]
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay)
        self.schedule = get_cosine_schedule_with_warmup(self.optimizer, min(warmup, steps // 10 + 1), steps)
        self.step, self.losses, self.curve, self.seconds, self.steps_by_device = 0, [], [], 0.0, {}

    def update(self, loss: torch.Tensor, device: torch.device) -> None:
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.schedule.step()
        self.losses.append(loss.item())
        self.step += 1
        self.steps_by_device[device.type] = self.steps_by_device.get(device.type, 0) + 1

    def run(self, batch: Callable[[int], Any], loss: Callable[[Any], torch.Tensor], device: torch.device,
            evaluate: Callable[[], dict], save: Callable[[], None], eval_every: int, checkpoint_every: int,
            on_eval: Callable[[dict], None] | None = None, progress: bool = True) -> None:
        """From the current step to the last: ``loss(batch(step))`` (only the loss under autocast: the data stay
        float32), an update, held-out rows ``{step, minutes, **evaluate()}`` (each also to ``on_eval``) and
        ``save()`` on their schedules and after the last step."""
        bar = tqdm(range(self.step, self.steps), initial=self.step, total=self.steps, desc=self.name,
                   disable=not progress)
        start = time.perf_counter() - self.seconds
        for _ in bar:
            data = batch(self.step)
            with autocast(device):
                value = loss(data)
            self.update(value, device)
            if self.step % 100 == 0:
                bar.set_postfix(loss=f"{np.mean(self.losses[-100:]):.4f}")
            self.seconds = time.perf_counter() - start
            if self.step % eval_every == 0 or self.step == self.steps:
                row = {"step": self.step, "minutes": round(self.seconds / 60, 2), **evaluate()}
                self.curve.append(row)
                if on_eval is not None:
                    on_eval(row)
                start = time.perf_counter() - self.seconds
            if self.step % checkpoint_every == 0 or self.step == self.steps:
                save()

    def state(self) -> dict:
        return {"modules": [m.state_dict() for m in self.modules], "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "step": self.step, "losses": self.losses,
                "curve": self.curve, "seconds": self.seconds, "steps_by_device": self.steps_by_device}

    def load(self, state: dict) -> None:
        """A saved :meth:`state`, from any device: weights and optimiser state go to the modules' device."""
        for m, s in zip(self.modules, state["modules"]):
            m.load_state_dict(s)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.step, self.losses, self.curve, self.seconds = (state[k] for k in ("step", "losses", "curve", "seconds"))
        self.steps_by_device = dict(state.get("steps_by_device", {}))

    def record(self) -> dict:
        return {"minutes": round(self.seconds / 60, 2), "steps_by_device": self.steps_by_device, "curve": self.curve,
                "loss_every_100": [float(np.mean(self.losses[i:i + 100])) for i in range(0, len(self.losses), 100)]}


def saved_run(path: Path, config, holds: tuple[str, ...]) -> dict | None:
    """The checkpoint at ``path`` (None if there is none), or a clear error where it was written with other
    settings than ``config`` (those a run may change on resuming aside) or lacks an entry of ``holds`` (written by
    an older version, in another layout)."""
    if not path.exists():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=False)  # written on any device
    missing = [key for key in holds if key not in saved]
    if missing:
        raise ValueError(f"{path} holds no {', '.join(missing)}: an older fireflow_edu wrote it in another layout; "
                         "delete it to start over, or choose another output folder")
    differ = differing_settings(saved["config"], config)
    if differ:
        raise ValueError(f"{path} was written with other settings ({', '.join(differ)}); resume with the same "
                         "settings or choose another output folder")
    return saved
