"""One parser for device names ('auto', 'cpu', 'cuda', 'cuda:N'): the nodes, the pipeline, the
representations and the training runner all accept the same names and fail the same way."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(name: str | torch.device | None = "auto", local_rank: int = 0,
                   set_current: bool = False) -> torch.device:
    """The torch device for ``name``. '' / None / 'auto' pick ``cuda:local_rank`` when CUDA is
    available (``local_rank`` is the DDP process's GPU), else the CPU. A CUDA device that does
    not exist raises ValueError naming it; ``set_current`` makes it the current CUDA device
    (what a DDP worker needs before NCCL initializes)."""
    if name is None or (isinstance(name, str) and name in ("", "auto")):
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as err:  # torch says "Invalid device string"
        raise ValueError(f"device {str(name)!r}: not a device name ('auto', 'cpu', 'cuda', "
                         "'cuda:N')") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(name)!r}: CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {str(name)!r}: only {count} CUDA device(s) here")
        if set_current:
            torch.cuda.set_device(device)
    return device
