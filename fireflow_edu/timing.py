"""Wall-clock timing that charges asynchronous GPU work to the phase that launched it."""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch


class Clock:
    """Seconds per named phase; synchronises CUDA at each boundary so queued kernels count where they belong."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str):
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
