"""The GEP depth term's pieces on known inputs: which predictions are the event groups of a
target window, and that its gradient reaches the transformer and never the frozen head."""

from __future__ import annotations

import pytest
import torch

from event_fm.models import EventFM, EventFMConfig
from event_fm.models.gep import EVENT, GEPConfig, GEPTransformer, interleave, modality_ids
from training.gep.depth import DepthDecoder
from training.gep.train import predicted_event_groups


@pytest.mark.parametrize("target", ["group", "token"])
@pytest.mark.parametrize("with_frames", [True, False])
def test_predicted_event_groups_are_the_predictions_of_those_windows_event_tokens(
        target, with_frames):
    cfg = GEPConfig(token_dim=3, width=8, depth=1, num_heads=2, agg_grid=(1, 2),
                    max_windows=4, target=target, with_frames=with_frames)
    model = GEPTransformer(cfg)
    k, n = cfg.group_size, 4 * model.period
    # position i "predicts" the value i: the picked groups name their positions
    pred = torch.arange(n, dtype=torch.float32)[None, :, None].expand(2, n, 3)
    groups = predicted_event_groups(model, pred, torch.tensor([1, 3]))
    assert groups.shape == (2, 2, k, 3)
    mods = model.target_modality(n)
    for j, t in enumerate((1, 3)):
        positions = groups[0, j, :, 0].long()
        targets = positions + model.shift
        assert torch.all(mods[positions] == EVENT)  # each predicts an event token ...
        assert torch.all(targets // model.period == t)  # ... of window t, in slot order
        assert torch.equal(targets % model.period, torch.arange(k))


def test_depth_loss_reaches_the_transformer_not_the_head():
    torch.manual_seed(0)
    eventfm = EventFM(EventFMConfig(preset="tiny", img_size=(32, 32), heads=("depth",),
                                    depth_bins=8, lora_rank=2, lora_alpha=2.0)).eval()
    decoder = DepthDecoder(eventfm)
    cfg = GEPConfig(token_dim=192, width=16, depth=1, num_heads=2, agg_grid=(1, 1),
                    max_windows=3)
    model = GEPTransformer(cfg)
    events, frames = torch.randn(2, 3, 2, 192), torch.randn(2, 3, 2, 192)
    pred = model(interleave(events, frames), modality_ids(3, cfg.group_size))
    groups = predicted_event_groups(model, pred, torch.tensor([1, 2]))
    depth = torch.full((4, 32, 32), 3.0)
    depth[0] = float("nan")  # a window without ground truth is masked, not a NaN loss
    loss = decoder.loss(groups.flatten(0, 1), depth, cfg.agg_grid)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in decoder.head.parameters())
