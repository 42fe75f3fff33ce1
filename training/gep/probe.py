"""Use (b): do the GEP transformer's features help a downstream head? A fresh depth head is
trained on the training recordings' windows from (1) the student's own event tokens, aggregated
to the transformer's grid, (2) the frozen GEP transformer's hidden states at the same window's
event group (which also saw the previous windows), and (3) both side by side, channel-wise (the
features a downstream model built on the encoder and GEP gets), then scored on the held-out
recordings. Same head, steps and data for each; only the features differ.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from event_fm.evaluation.metrics import DepthMetrics
from event_fm.models import EncoderOutput
from event_fm.models.gep import GEPTransformer, interleave, modality_ids, upsample_patches
from event_fm.models.heads import DepthHead
from training.losses.tasks import depth_loss

from .data import WindowGroups

FEATURES = ("student_tokens", "gep_features", "student_and_gep")


@torch.no_grad()
def gep_event_features(gep: GEPTransformer, groups: WindowGroups,
                       batch_size: int = 32) -> torch.Tensor:
    """Hidden states (N, K, width) of every window's event group. Each recording is cut into
    runs of the model's context length; a window sees the earlier windows of its run."""
    cfg = gep.config
    k, length = cfg.group_size, cfg.max_windows
    device = gep.token_mean.device
    out = torch.zeros(len(groups), k, cfg.width)
    runs = [(s, min(s + length, rec.stop)) for rec in groups.recordings
            for s in range(rec.start, rec.stop, length)]
    for i in range(0, len(runs), batch_size):
        for a, b in runs[i:i + batch_size]:  # runs differ in length at recording ends
            ev = groups.events[a:b][None].to(device)
            fr = groups.frames[a:b][None].to(device)
            seq = interleave(ev, fr if cfg.with_frames else None)
            hidden = gep.hidden(seq, modality_ids(b - a, k, cfg.with_frames)).cpu()[0]
            period = 2 * k if cfg.with_frames else k
            out[a:b] = hidden.reshape(b - a, period, -1)[:, :k]
    return out


def _feats(groups_or_hidden: torch.Tensor, grid: tuple[int, int], full: tuple[int, int]):
    cls, patches = groups_or_hidden[:, 0], groups_or_hidden[:, 1:]
    return cls, upsample_patches(patches, grid, full)


def train_probe(features: torch.Tensor, depth: torch.Tensor, agg_grid: tuple[int, int],
                token_grid: tuple[int, int], img_size: tuple[int, int],
                depth_range: tuple[float, float], steps: int = 300, batch_size: int = 16,
                lr: float = 1e-3, device: torch.device | str = "cpu",
                seed: int = 0) -> DepthHead:
    """A fresh DepthHead (64 bins, logit stride 2) on (N, K, D) group features."""
    torch.manual_seed(seed)
    head = DepthHead(features.shape[-1], 64, *depth_range, logit_stride=2).to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(steps), unit="step", desc="probe", leave=False):
        idx = torch.randint(0, len(features), (batch_size,), generator=gen)
        cls, patch = _feats(features[idx].to(device), agg_grid, token_grid)
        feats = EncoderOutput(cls=cls, patch=patch.flatten(2).transpose(1, 2),
                              grid_size=token_grid)
        pred = head(feats, img_size)["depth"][:, 0]
        loss = depth_loss(pred, depth[idx].float().to(device), *depth_range)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return head.eval()


@torch.no_grad()
def score_probe(head: DepthHead, features: torch.Tensor, depth: torch.Tensor,
                agg_grid: tuple[int, int], token_grid: tuple[int, int],
                img_size: tuple[int, int], batch_size: int = 32) -> dict[str, float]:
    device = next(head.parameters()).device
    acc = DepthMetrics()
    for s in range(0, len(features), batch_size):
        cls, patch = _feats(features[s:s + batch_size].to(device), agg_grid, token_grid)
        feats = EncoderOutput(cls=cls, patch=patch.flatten(2).transpose(1, 2),
                              grid_size=token_grid)
        pred = head(feats, img_size)["depth"][:, 0].cpu()
        for p, g in zip(pred.numpy(), depth[s:s + batch_size].float().numpy(), strict=True):
            acc.update(p, g)
    return acc.compute()


def run_probe(gep: GEPTransformer, train: dict, heldout: dict[str, dict],
              token_grid: tuple[int, int], img_size: tuple[int, int],
              depth_range: tuple[float, float], steps: int, device) -> dict:
    """MAE@10m etc. per held-out set for each feature kind in :data:`FEATURES`."""
    grid = gep.config.agg_grid

    def features(groups: WindowGroups) -> dict[str, torch.Tensor]:
        hidden = gep_event_features(gep, groups)
        return {"student_tokens": groups.events, "gep_features": hidden,
                "student_and_gep": torch.cat([groups.events.float(), hidden], dim=-1)}

    train_feats = features(WindowGroups(train, grid))
    held_feats = {name: features(WindowGroups(tokens, grid)) for name, tokens in heldout.items()}
    results: dict[str, dict] = {}
    for kind in FEATURES:
        head = train_probe(train_feats[kind], train["depth"], grid, token_grid, img_size,
                           depth_range, steps, device=device)
        results[kind] = {name: score_probe(head, held_feats[name][kind], tokens["depth"], grid,
                                           token_grid, img_size)
                         for name, tokens in heldout.items()}
    return results
