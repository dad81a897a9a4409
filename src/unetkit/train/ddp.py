"""Training on several processes with PyTorch DDP, as ``torchrun --nproc_per_node=K -m unetkit train ...`` starts it.

Samples are keyed by their global index: at step ``s`` with ``b`` tiles per
process, rank ``r`` draws samples ``s K b + r b ... s K b + (r + 1) b - 1``, so
K processes follow exactly the data of one process at batch ``K b``, and the
averaged gradients are that process's gradients (the loss is a mean over
equally many pixels per process). Only rank 0 writes checkpoints, logs and
plots and validates; every rank checks for divergence on the same, reduced
numbers, so all stop together. Batch-norm statistics are per process.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Ranks", "ddp_session", "GlobalIndexSampler", "SINGLE"]


@dataclass(frozen=True)
class Ranks:
    """This process's place in the group (``world == 1``: no DDP)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every rank."""
        if not self.active:
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item() > 0.5)

    def broadcast_int(self, value: int) -> int:
        """Rank 0's ``value`` on every rank."""
        if not self.active:
            return value
        t = torch.tensor([int(value)], dtype=torch.int64)
        dist.broadcast(t, src=0)
        return int(t.item())

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order (on every rank)."""
        if not self.active:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


SINGLE = Ranks()


@contextlib.contextmanager
def ddp_session(device_type: str):
    """Join the process group that torchrun describes (``WORLD_SIZE`` > 1), leave it after; else a single process.

    gloo on CPU, NCCL on CUDA (each rank on ``cuda:LOCAL_RANK``).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or dist.is_initialized():
        ranks = Ranks(dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else SINGLE
        yield ranks
        return
    ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(ranks.local_rank)
    dist.init_process_group(backend=backend)
    try:
        yield ranks
    except BaseException:
        dist.destroy_process_group()  # no barrier: the other ranks may never reach one (torchrun stops them)
        raise
    # Every rank reaches the end before any tears down: a gloo rank whose peer closed its sockets while it was
    # still reading aborts the process ("Connection closed by peer", SIGABRT), which failed the DDP test once.
    dist.barrier()
    dist.destroy_process_group()


class GlobalIndexSampler(torch.utils.data.Sampler):
    """Sample indices of one rank: step ``s`` takes ``s K b + r b`` ... ``+ b - 1`` (K ranks, b per rank)."""

    def __init__(self, first_step: int, last_step: int, batch: int, ranks: Ranks):
        self.first, self.last, self.batch, self.ranks = first_step, last_step, batch, ranks

    def __len__(self) -> int:
        return max(self.last - self.first, 0) * self.batch

    def __iter__(self):
        k, b, r = self.ranks.world, self.batch, self.ranks.rank
        for step in range(self.first, self.last):
            base = step * k * b + r * b
            yield from range(base, base + b)
