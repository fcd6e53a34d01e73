"""This process's place in a torchrun job: device, rank, the all-reduce, the wrapped model."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..inference.engine import EngineError, resolve_device


class Dist:
    """This process's place in a torchrun job (world 1 without torchrun)."""

    def __init__(self, device_arg: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        device = resolve_device(device_arg)
        if self.world > 1 and device.type == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            if local >= torch.cuda.device_count():   # NCCL needs a GPU of its own per process
                raise EngineError(f"this process is LOCAL_RANK {local} of a torchrun job but this machine has "
                                  f"{torch.cuda.device_count()} CUDA device(s); start at most that many "
                                  f"(--nproc_per_node) or train with --device cpu")
            device = torch.device("cuda", local)
        if device.type == "cuda":
            # The current device, for all that does not name one (streams, pinning, GradScaler,
            # NCCL): --device cuda:1 means GPU 1 there too.
            torch.cuda.set_device(device)
        if self.world > 1:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        self.device = device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(t)
        return t

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """
        Return the model as this process trains it.

        The model itself when alone, DistributedDataParallel (with SyncBatchNorm on CUDA) in a
        job of several.  Validation and saving use the bare model.
        """
        if self.world == 1:
            return model
        if self.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
