"""Sharding a list of cases over accelerate processes (``accelerate launch`` or ``torchrun``), one GPU each.

The order matters on a multi-GPU machine, and :class:`Shards` keeps it:

1. the process group starts first (``PartialState``), so each rank knows its device before anything loads;
   each rank then loads its pipeline straight onto ``shards.device`` (not onto cuda:0 and moved after);
2. the to-do list is decided once, on the main process, and broadcast: ranks that start late, or that
   would read a folder another rank is already writing to, still agree on who does what;
3. each rank takes a contiguous share (:meth:`Shards.share`) and results come back to the main process
   through accelerate's ``gather_object``, not through files;
4. leaving the ``with Shards() as shards:`` block waits for every rank and ends the process group, so no rank
   exits while another still talks to it (gloo and NCCL abort such a rank at exit).

A plain ``python -m`` run is one process that does every case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class Shards:
    """This process's place among the ranks of a run: device, index, count, and the collective steps.

    Use it as a context manager: ``with Shards() as shards: ...``.
    """

    def __init__(self):
        from accelerate import PartialState

        self.state = PartialState(cpu=not torch.cuda.is_available())  # gloo on CPU, NCCL on GPUs

    def __enter__(self) -> Shards:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if self.count > 1:
            if exc_type is None:  # a rank that failed must not wait for the others: its launcher stops them
                self.state.wait_for_everyone()
            self.state.destroy_process_group()

    @property
    def device(self) -> torch.device:
        return self.state.device

    @property
    def index(self) -> int:
        return self.state.process_index

    @property
    def count(self) -> int:
        return self.state.num_processes

    @property
    def is_main(self) -> bool:
        return self.state.is_main_process

    def decide(self, make: Callable[[], Any]) -> Any:
        """``make()`` run on the main process only, its result (any picklable object) sent to every rank."""
        from accelerate.utils import broadcast_object_list

        box = [make() if self.is_main else None]
        if self.count > 1:
            broadcast_object_list(box, from_process=0)
        return box[0]

    def share(self, items: list) -> list:
        """This rank's contiguous share of ``items``; the first ``len % count`` ranks take one more."""
        base, extra = divmod(len(items), self.count)
        start = self.index * base + min(self.index, extra)
        return items[start:start + base + (self.index < extra)]

    def gather(self, rows: list[Any]) -> list[Any]:
        """Every rank's ``rows`` concatenated in rank order (on every rank)."""
        if self.count == 1:
            return list(rows)
        from accelerate.utils import gather_object

        return gather_object(list(rows))
