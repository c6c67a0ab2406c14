"""Multi-GPU / multi-node training through torchrun (DistributedDataParallel).

Launch any training command under torchrun, e.g.
``torchrun --nproc_per_node 2 -m xmkd distill ...`` (or ``--nnodes``/``--rdzv-endpoint`` for several
machines): :func:`init_distributed` reads torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT) and picks NCCL on GPUs, gloo on CPU. Without those variables everything
runs in one process and the helpers here are no-ops.

The batch size in the configs is the GLOBAL batch: each of the W processes loads batch/W samples
through a ``DistributedSampler``. The sampler deals out the epoch's permutation round-robin, so the
union of the W local batches of step s is exactly the global batch s of a single process using the
same sampler with W = 1; DDP averages gradients, so without batch-dependent layers (or with
SyncBatchNorm on GPUs) W processes compute what one process computes. Only rank 0 logs, validates
and writes checkpoints.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from xmkd.errors import XmkdError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistContext:
    """Join the torchrun process group when launched by torchrun, else a single-process context.

    ``device`` is the config's device setting: ``"auto"`` uses this process's local GPU when CUDA
    is available and the CPU otherwise.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device == "auto" or device.startswith("cuda"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise XmkdError(f"device {device!r} was asked for, but torch sees no CUDA GPU")
    if world <= 1:
        if device == "auto":
            device = "cuda" if use_cuda else "cpu"
        return DistContext(device=device)
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        gpus = torch.cuda.device_count()
        if local_rank >= gpus:
            raise XmkdError(
                f"torchrun started process {local_rank + 1} on this machine, but torch sees "
                f"{gpus} GPU{'s' if gpus != 1 else ''}: start at most {gpus} per machine "
                f"(torchrun --nproc-per-node {gpus}), or add --device cpu to train on the CPUs"
            )
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    else:
        device = "cpu"
    if not dist.is_initialized():
        if not dist.is_available():
            raise XmkdError("torchrun started several processes, but torch.distributed is missing")
        try:
            dist.init_process_group(backend=backend, init_method="env://")
        except (RuntimeError, ValueError) as exc:
            raise XmkdError(
                f"could not join the torchrun process group (rank {rank} of {world}, backend "
                f"{backend}): {exc}"
            ) from exc
        # Leave the group before the interpreter tears down: a process group still alive
        # when its C++ object is destroyed at exit can abort the process ("terminate called
        # without an active exception", seen from a gloo rank on a loaded machine).
        atexit.register(_destroy_process_group)
    return DistContext(rank, local_rank, world, backend, device)


def _destroy_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def make_sampler(
    dataset: Dataset, ctx: DistContext, shuffle: bool, seed: int, drop_last: bool = False
) -> DistributedSampler:
    """The sampler of every training loader, also with one process (so W = 1 and W = 2 see the
    same global batches; ``set_epoch`` reshuffles deterministically per epoch)."""
    return DistributedSampler(
        dataset,
        num_replicas=ctx.world_size,
        rank=ctx.rank,
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
    )


def local_batch_size(global_batch: int, ctx: DistContext) -> int:
    if global_batch % ctx.world_size:
        raise XmkdError(
            f"the batch size {global_batch} does not divide among {ctx.world_size} processes; "
            "choose a multiple of the process count"
        )
    return global_batch // ctx.world_size


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DDP around ``model`` when distributed (BatchNorm synchronised across GPUs), else itself."""
    if not ctx.distributed:
        return model
    if ctx.backend == "nccl":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[ctx.local_rank])
    return nn.parallel.DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over processes (in place; returned for chaining)."""
    if ctx.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_object(obj: object, ctx: DistContext) -> object:
    """Rank 0's value of ``obj`` on every process."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
