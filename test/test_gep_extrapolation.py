"""GEP's closed-form pieces: the fitted linear reference ("ar") and the update scale fitted on
validation recordings; exact on data whose answer is known."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from event_fm.models.gep import (
    EVENT,
    FRAME,
    GEPConfig,
    GEPTransformer,
    load_gep,
    modality_ids,
    save_gep,
)
from training.gep.data import WindowGroups, split_last_recordings
from training.gep.extrapolation import calibrate_update, fit_linear_extrapolation


def ar_model(target: str = "group", windows: int = 3) -> GEPTransformer:
    torch.manual_seed(0)
    cfg = GEPConfig(token_dim=4, width=16, depth=1, num_heads=2, agg_grid=(1, 2),
                    max_windows=5, target=target, reference="ar", ar_windows=windows)
    model = GEPTransformer(cfg).eval()
    torch.nn.init.zeros_(model.head.weight)  # no learned update: the reference alone
    return model


@pytest.mark.parametrize("target", ["group", "token"])
def test_ar_reference_weighs_the_slot_history_per_modality_and_channel(target):
    model = ar_model(target)
    weights = torch.rand(2, 3, 4)
    model.set_ar_weights(weights)
    k = model.config.group_size
    period, shift = 2 * k, (k if target == "group" else 1)
    tokens = torch.randn(1, 5 * period, 4)
    mods = modality_ids(5, k)
    with torch.no_grad():
        pred = model(tokens, mods)
    for i in range(period - shift, tokens.shape[1] - shift):
        j = i + shift
        # the m-th window back, or the earliest that exists
        history = [tokens[0, j - min(m, j // period) * period] for m in (1, 2, 3)]
        w = weights[int(mods[j])]
        expected = sum(w[m] * history[m] for m in range(3))
        torch.testing.assert_close(pred[0, i], expected)
    changed = tokens.clone()
    changed[:, 9:] += 2.0
    with torch.no_grad():  # causal: later tokens never change earlier predictions
        assert torch.equal(model(changed, mods)[:, :9], pred[:, :9])
    with pytest.raises(ValueError, match="ar weights"):
        model.set_ar_weights(torch.zeros(2, 2, 4))


def synthetic_tokens(recordings: int, windows: int, k: int, a: float, b: float,
                     noise: float = 0.01, seed: int = 0) -> dict:
    """Event slots follow x_t = a x_(t-1) + b x_(t-2) + noise; frame slots = 2 x the events."""
    gen = torch.Generator().manual_seed(seed)
    cls, patch, rec = [], [], []
    for r in range(recordings):
        x = [torch.randn(k, 4, generator=gen), torch.randn(k, 4, generator=gen)]
        for _ in range(windows - 2):
            x.append(a * x[-1] + b * x[-2] + noise * torch.randn(k, 4, generator=gen))
        seq = torch.stack(x)  # (T, k, C): slot 0 is CLS, the rest a 1 x (k-1) patch map
        cls.append(seq[:, 0])
        patch.append(seq[:, 1:].transpose(1, 2).reshape(windows, 4, 1, k - 1))
        rec.append(torch.full((windows,), r))
    ev_cls, ev_patch = torch.cat(cls), torch.cat(patch)
    return {"event_cls": ev_cls, "event_patch": ev_patch, "frame_cls": 2 * ev_cls,
            "frame_patch": 2 * ev_patch, "depth": torch.zeros(len(ev_cls), 2, 2),
            "recording": torch.cat(rec), "recording_names": [f"r{r}" for r in range(recordings)]}


def test_linear_extrapolation_recovers_the_process_weights():
    tokens = synthetic_tokens(20, 40, 3, a=0.6, b=0.3, noise=1.0)
    weights = fit_linear_extrapolation(WindowGroups(tokens, (1, 2)), windows=3, ridge=1e-6)
    assert weights.shape == (2, 3, 4)
    for modality in (EVENT, FRAME):  # the frames are a scaled copy: the same weights
        torch.testing.assert_close(weights[modality, 0], torch.full((4,), 0.6), atol=0.05,
                                   rtol=0)
        torch.testing.assert_close(weights[modality, 1], torch.full((4,), 0.3), atol=0.05,
                                   rtol=0)
        torch.testing.assert_close(weights[modality, 2], torch.zeros(4), atol=0.05, rtol=0)


def test_validation_split_keeps_whole_recordings():
    tokens = synthetic_tokens(5, 6, 3, a=1.0, b=0.0)
    head, tail = split_last_recordings(tokens, 2)
    assert head["recording"].unique().tolist() == [0, 1, 2]
    assert tail["recording"].unique().tolist() == [3, 4]
    assert len(tail["event_cls"]) == len(tail["depth"]) == 12
    assert tail["recording_names"] == tokens["recording_names"]
    with pytest.raises(ValueError, match="cannot keep"):
        split_last_recordings(tokens, 5)


def test_update_scale_shrinks_an_update_that_does_not_carry_over():
    """A learned update unrelated to the validation recordings is cut to (near) nothing, so
    the validated prediction is never worse than its reference there."""
    tokens = synthetic_tokens(4, 8, 3, a=1.0, b=0.0)  # copy-last is exact up to the noise
    groups = WindowGroups(tokens, (1, 2))
    model = ar_model(windows=1)
    torch.nn.init.normal_(model.head.weight, std=0.5)  # a random update: pure harm
    model.set_token_stats(*groups.channel_stats())
    report = calibrate_update(model, groups, windows=4)
    assert 0.0 <= report["update_scale"] < 0.05
    assert report["validation_mse_scaled_update"] <= report["validation_mse_reference"] + 1e-6
    assert report["validation_mse_full_update"] > 10 * report["validation_mse_reference"]
    assert float(model.update_scale) == report["update_scale"]
    # no update at all: nothing to scale
    torch.nn.init.zeros_(model.head.weight)
    assert calibrate_update(model, groups, windows=4)["update_scale"] == 0.0


def test_target_modality_follows_the_interleaving():
    model = ar_model("group")
    k = model.config.group_size
    # group targets: the event group predicts the frame group of its window, and so on
    assert model.target_modality(4 * k).tolist() == [FRAME] * k + [EVENT] * k + [FRAME] * k \
        + [EVENT] * k
    token = ar_model("token")
    assert token.target_modality(2 * k).tolist() == [EVENT] * (k - 1) + [FRAME] * k + [EVENT]


def test_checkpoint_from_before_the_buffers_loads_as_copy_last_with_full_update(tmp_path):
    cfg = GEPConfig(token_dim=4, width=16, depth=1, num_heads=2, agg_grid=(1, 2),
                    max_windows=3)
    model = GEPTransformer(cfg).eval()
    path = save_gep(model, tmp_path / "gep")
    weights = load_file(str(path / "model.safetensors"))
    save_file({k: v for k, v in weights.items()
               if k not in ("ar_weights", "update_scale")}, str(path / "model.safetensors"))
    loaded = load_gep(path)
    assert float(loaded.update_scale) == 1.0
    assert loaded.ar_weights[:, 0].eq(1).all() and loaded.ar_weights[:, 1:].eq(0).all()
    tokens = torch.randn(1, 3 * 2 * cfg.group_size, 4)
    mods = modality_ids(3, cfg.group_size)
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens, mods), model(tokens, mods))
