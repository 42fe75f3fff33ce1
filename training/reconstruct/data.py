"""Reconstruction samples: (Tencode of a window, the real frame) pairs cut from training shards.

The synchronized shards (training/data) hold each window's raw events and its frame; here every
``stride``-th sample becomes a Tencode (uint8, the time channel quantized to 1/255) plus the
target frame — the clean frame where the recording has one (``/camera/image_clean`` of the
degraded held-out bags), else the delivered frame — and, for evaluation, the plain accumulated
event frame (the first baseline) and the delivered (possibly degraded) frame. One ``.npz`` per
split, so training never re-decodes events.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from event_fm.dataset.shard_dataset import ShardDataset
from event_fm.representations import event_frame, tencode

#: arrays in a split file: name -> meaning
FIELDS = {
    "tencode": "(N, 3, H, W) uint8 Tencode (R ON, G last time, B OFF) x 255",
    "frame": "(N, H, W, 3) uint8 target: the clean frame when the recording has one",
    "delivered": "(N, H, W, 3) uint8 the frame as delivered (degraded on held-out bags)",
    "event_frame": "(N, H, W, 3) uint8 accumulated events, ON red / OFF blue on white",
    "source": "(N,) recording name",
    "stamp_ns": "(N,) window end, ROS time",
}


def window_tencode(events: np.ndarray, height: int, width: int, t_start: int, t_end: int,
                   counts: bool = False) -> np.ndarray:
    """The generator's input for one window, (3, H, W) float32 in [0, 1]."""
    return tencode(events, height, width, t_start, t_end, counts=counts).numpy()


def quantize(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def build_split(shard_root: str | Path, split: str, out_path: str | Path, stride: int = 1,
                max_samples: int | None = None, counts: bool = False,
                progress: bool = True) -> dict:
    """Cut every ``stride``-th shard sample of ``split`` into ``out_path`` (.npz)."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    dataset = ShardDataset(shard_root, split)
    indices = list(range(0, len(dataset), stride))[:max_samples]
    arrays: dict[str, list] = {k: [] for k in FIELDS}
    skipped = 0
    iterator = indices
    if progress:
        from tqdm import tqdm

        iterator = tqdm(indices, desc=f"reconstruct data {split}", unit="sample")
    for i in iterator:
        s = dataset[i]
        if s.image is None or len(s.events) == 0:
            skipped += 1  # nothing to learn from (no frame or an empty window)
            continue
        target = s.image_clean if s.image_clean is not None else s.image
        arrays["tencode"].append(quantize(window_tencode(s.events, s.height, s.width, s.t_start,
                                                         s.t_end, counts)))
        arrays["frame"].append(np.asarray(target, np.uint8))
        arrays["delivered"].append(np.asarray(s.image, np.uint8))
        arrays["event_frame"].append(event_frame(s.events, s.height, s.width, s.t_start,
                                                 s.t_end).numpy())
        arrays["source"].append(s.source)
        arrays["stamp_ns"].append(s.stamp_ns)
    if not arrays["tencode"]:
        raise ValueError(f"split {split!r} under {shard_root} has no usable sample")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    packed = {k: np.stack(v) if k not in ("source", "stamp_ns") else np.asarray(v)
              for k, v in arrays.items()}
    tmp = out_path.with_name(out_path.name + ".tmp.npz")
    np.savez(tmp, **packed)
    tmp.replace(out_path)  # appears only when complete
    return {"split": split, "samples": len(packed["tencode"]), "skipped": skipped,
            "path": str(out_path), "size": list(packed["frame"].shape[1:3])}


def load_split(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reconstruction data missing: {path} (run 'event-fm train "
                                f"reconstruct data' first)")
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


class PairDataset(torch.utils.data.Dataset):
    """(tencode, frame) float tensors in [0, 1]; random crops and flips when ``crop`` is set."""

    def __init__(self, arrays: dict[str, np.ndarray], crop: tuple[int, int] | None = None,
                 flip: bool = False, seed: int = 0) -> None:
        self.tencode = arrays["tencode"]
        self.frame = arrays["frame"]
        self.crop = tuple(crop) if crop else None
        self.flip = flip
        self.rng = np.random.default_rng(seed)
        h, w = self.frame.shape[1:3]
        if self.crop and (self.crop[0] > h or self.crop[1] > w):
            raise ValueError(f"crop {self.crop} larger than the samples ({h}, {w})")

    def __len__(self) -> int:
        return len(self.tencode)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.tencode[i]  # (3, H, W)
        y = self.frame[i].transpose(2, 0, 1)  # (3, H, W)
        if self.crop:
            h, w = y.shape[1:]
            top = int(self.rng.integers(0, h - self.crop[0] + 1))
            left = int(self.rng.integers(0, w - self.crop[1] + 1))
            x = x[:, top:top + self.crop[0], left:left + self.crop[1]]
            y = y[:, top:top + self.crop[0], left:left + self.crop[1]]
        if self.flip and self.rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, :, ::-1]
        to_float = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float().div_(255.0)  # noqa: E731
        return to_float(x), to_float(y)
