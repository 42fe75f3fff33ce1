"""Predicted event groups decoded into depth by the aligned checkpoint's frozen depth head: the
evaluation's predicted-future depth, and the optional training term that makes the predicted
tokens decode into the next window's depth (``fit.depth_weight``) — the feature MSE alone weighs
every channel evenly, including the ones the depth head ignores."""

from __future__ import annotations

import torch

from event_fm.models import EncoderOutput, EventFM
from event_fm.models.gep import split_window_tokens, upsample_patches
from training.losses.tasks import depth_loss


class DepthDecoder:
    """The checkpoint's depth head on (CLS, patch map) pairs. Frozen: gradients reach the
    tokens (for the training term), never the head."""

    def __init__(self, model: EventFM):
        if "depth" not in model.heads:
            raise ValueError("the checkpoint has no depth head")
        self.head = model.heads["depth"].eval()
        for p in self.head.parameters():
            p.requires_grad_(False)
        self.grid = model.encoder.backbone.grid_size(*model.img_size)
        self.img_size = tuple(model.img_size)
        self.depth_range = tuple(float(d) for d in self.head.depth_range)
        self.device = next(model.parameters()).device

    def to(self, device: torch.device | str) -> DepthDecoder:
        self.head.to(device)
        self.device = torch.device(device)
        return self

    def decode(self, cls: torch.Tensor, patch_map: torch.Tensor) -> torch.Tensor:
        """(B, C), (B, C, h, w) -> depth (B, H, W) metres, on the head's device."""
        feats = EncoderOutput(cls=cls.to(self.device),
                              patch=patch_map.to(self.device).flatten(2).transpose(1, 2),
                              grid_size=self.grid)
        return self.head(feats, self.img_size)["depth"][:, 0].float()

    @torch.no_grad()
    def __call__(self, cls: torch.Tensor, patch_map: torch.Tensor) -> torch.Tensor:
        return self.decode(cls, patch_map).cpu()

    def decode_groups(self, groups: torch.Tensor, agg_grid: tuple[int, int]) -> torch.Tensor:
        """Aggregated event groups (B, K, C), upsampled back to the head's token grid ->
        depth (B, H, W), differentiable in the groups."""
        cls, patches = split_window_tokens(groups)
        return self.decode(cls, upsample_patches(patches, agg_grid, self.grid))

    def loss(self, groups: torch.Tensor, depth: torch.Tensor,
             agg_grid: tuple[int, int]) -> torch.Tensor:
        """The depth head's own training loss (SI-log + gradient) of the decoded groups
        against ground truth (B, H, W); windows without ground truth (all NaN) count zero."""
        gt = depth.to(self.device).float()
        pred = self.decode_groups(groups, agg_grid)
        return depth_loss(pred, gt, *self.depth_range)["loss"]


@torch.no_grad()
def decode_groups(decoder: DepthDecoder, groups: torch.Tensor,
                  agg_grid: tuple[int, int]) -> torch.Tensor:
    """:meth:`DepthDecoder.decode_groups` without gradients, on the CPU (for scoring)."""
    return decoder.decode_groups(groups, agg_grid).cpu()
