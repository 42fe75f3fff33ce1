"""Encode every window of a split once with the aligned encoders, so the transformer trains on
cached tokens: the event student on the window's voxels, the frozen teacher on the frame the
camera delivered (degraded on the held-out recordings), plus the depth ground truth at model
resolution for decoding predicted futures.

One file per split, ``tokens_<split>.pt``: a dict of tensors in time order per recording.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from event_fm.dataset.shard_dataset import ShardDataset
from event_fm.models import EventFM
from training.stages.common import to_batch

#: the tensors of a token file (N windows; C channels; h x w the encoder's token grid)
TOKEN_KEYS = ("event_cls", "event_patch", "frame_cls", "frame_patch", "depth", "recording",
              "t_end")


def time_order(dataset: ShardDataset) -> list[int]:
    """Sample indices sorted by (recording, window end): sequences need time order."""
    keys = []
    for i in range(len(dataset)):
        s = dataset[i]
        keys.append((s.source, s.t_end, i))
    return [i for _, _, i in sorted(keys)]


@torch.inference_mode()
def encode_split(model: EventFM, dataset: ShardDataset, batch_size: int = 8,
                 max_samples: int | None = None, progress: bool = True) -> dict:
    """Tokens of every window of ``dataset``; see :data:`TOKEN_KEYS`."""
    if model.teacher is None:
        raise ValueError("the checkpoint has no frozen image teacher; GEP needs both encoders "
                         "(use a distill/heads checkpoint, not an exported one)")
    device = next(model.parameters()).device
    grid = model.encoder.backbone.grid_size(*model.img_size)
    order = time_order(dataset)[:max_samples]
    sources: dict[str, int] = {}
    parts: dict[str, list] = {k: [] for k in TOKEN_KEYS}
    for start in tqdm(range(0, len(order), batch_size), disable=not progress, unit="batch",
                      desc="gep tokens", leave=False):
        samples = [dataset[i] for i in order[start:start + batch_size]]
        if any(s.image is None for s in samples):
            raise ValueError("a sample has no camera frame; GEP interleaves frames")
        batch = to_batch(samples, model.img_size, model.config.num_bins, grid, device)
        events = model.encoder(batch.voxels)
        frames = model.teacher(batch.images)
        parts["event_cls"].append(events.cls.float().cpu())
        parts["event_patch"].append(events.patch_map().float().cpu())
        parts["frame_cls"].append(frames.cls.float().cpu())
        parts["frame_patch"].append(frames.patch_map().float().cpu())
        depth = (batch.depth if batch.depth is not None
                 else torch.full((len(samples), *model.img_size), float("nan"), device=device))
        parts["depth"].append(depth.half().cpu())
        parts["recording"].append(torch.tensor(
            [sources.setdefault(s.source, len(sources)) for s in samples]))
        parts["t_end"].append(torch.tensor([s.t_end for s in samples], dtype=torch.int64))
    out = {k: torch.cat(v) for k, v in parts.items()}
    out["recording_names"] = list(sources)
    return out


def save_tokens(path: Path, tokens: dict, meta: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({**tokens, "meta": meta}, tmp)
    tmp.replace(path)
    return path


def load_tokens(path: Path) -> dict:
    if not Path(path).is_file():
        raise FileNotFoundError(f"token file missing: {path} (run `event-fm train gep tokens`)")
    data = torch.load(path, map_location="cpu", weights_only=True)
    missing = [k for k in TOKEN_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: not a GEP token file (missing {missing})")
    return data


def recording_slices(recording: torch.Tensor) -> list[slice]:
    """Contiguous runs of one recording id (the files are sorted by recording, then time)."""
    ids = recording.numpy()
    if not len(ids):
        return []
    cuts = np.flatnonzero(np.diff(ids)) + 1
    bounds = np.concatenate([[0], cuts, [len(ids)]])
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
