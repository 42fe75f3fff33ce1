"""Token sequences for the GEP transformer: per recording, windows in time order, each window
one event group and one frame group (CLS + aggregated patches), cut into fixed-length runs."""

from __future__ import annotations

import torch

from event_fm.models.gep import window_tokens

from .tokens import recording_slices


class WindowGroups:
    """Aggregated token groups of a token file: events and frames (N, K, C), K = 1 + gh*gw."""

    def __init__(self, tokens: dict, grid: tuple[int, int]):
        self.grid = tuple(grid)
        self.events = window_tokens(tokens["event_cls"], tokens["event_patch"], self.grid)
        self.frames = window_tokens(tokens["frame_cls"], tokens["frame_patch"], self.grid)
        self.recordings = recording_slices(tokens["recording"])
        self.depth = tokens.get("depth")  # (N, H, W) ground truth, for the depth term
        self.names = list(tokens.get("recording_names", []))

    def __len__(self) -> int:
        return len(self.events)

    def channel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std over every token of both modalities."""
        flat = torch.cat([self.events, self.frames]).reshape(-1, self.events.shape[-1])
        return flat.mean(0), flat.std(0)


class SequenceDataset(torch.utils.data.Dataset):
    """Every run of ``windows`` consecutive windows inside one recording (stride ``stride``).

    Item: (events (T, K, C), frames (T, K, C)), plus the windows' depth ground truth
    (T, H, W) with ``with_depth``; the trainer interleaves the groups.
    """

    def __init__(self, groups: WindowGroups, windows: int, stride: int = 1,
                 with_depth: bool = False):
        if with_depth and groups.depth is None:
            raise ValueError("the token file has no depth ground truth")
        self.groups, self.windows, self.with_depth = groups, windows, with_depth
        self.starts = [s for rec in groups.recordings
                       for s in range(rec.start, rec.stop - windows + 1, stride)]
        if not self.starts:
            raise ValueError(f"no recording has {windows} windows")

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        run = slice(self.starts[i], self.starts[i] + self.windows)
        item = (self.groups.events[run], self.groups.frames[run])
        return item + (self.groups.depth[run],) if self.with_depth else item


def collate(items: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.stack(parts) for parts in zip(*items, strict=True))


def windows_back(last: int, count: int, first: int) -> list[int]:
    """Indices of window ``last`` and the ``count - 1`` before it, the earliest existing one
    (``first``) repeated where a recording has fewer: the history a fitted linear
    extrapolation reads, in training and in evaluation alike."""
    return [max(last - m, first) for m in range(count)]


def split_last_recordings(tokens: dict, count: int) -> tuple[dict, dict]:
    """A token file -> (all but its last ``count`` recordings, those recordings): the
    validation recordings the update scale is fitted on, never trained on."""
    slices = recording_slices(tokens["recording"])
    if not 0 < count < len(slices):
        raise ValueError(f"cannot keep {count} of {len(slices)} recordings for validation")
    cut = slices[-count].start
    n = len(tokens["recording"])
    head = {k: v[:cut] if isinstance(v, torch.Tensor) and len(v) == n else v
            for k, v in tokens.items()}
    tail = {k: v[cut:] if isinstance(v, torch.Tensor) and len(v) == n else v
            for k, v in tokens.items()}
    return head, tail
