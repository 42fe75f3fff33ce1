"""GEP stage 2: token layout, causality, cached decoding, and that a tiny transformer learns."""

from __future__ import annotations

import pytest
import torch

from event_fm.models.gep import (
    EVENT,
    FRAME,
    GEPConfig,
    GEPTransformer,
    aggregate_patches,
    interleave,
    load_gep,
    modality_ids,
    save_gep,
    upsample_patches,
    window_tokens,
)


def tiny(residual: bool = True, target: str = "group", **kw) -> GEPTransformer:
    torch.manual_seed(0)
    cfg = GEPConfig(token_dim=8, width=16, depth=2, num_heads=2, agg_grid=(1, 2),
                    max_windows=4, residual=residual, target=target, **kw)
    model = GEPTransformer(cfg)
    if residual:  # a non-zero head, so the learned update takes part in every check
        torch.nn.init.normal_(model.head.weight, std=0.1)
    return model.eval()


def test_aggregation_averages_blocks_in_row_major_order():
    patch = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4)  # (C=2, h=4, w=4)
    tokens = aggregate_patches(patch[None], (2, 2))[0]  # (4, C)
    # channel 0 holds 0..15 row-major: the top-left 2x2 block is {0, 1, 4, 5}
    assert tokens[:, 0].tolist() == [2.5, 4.5, 10.5, 12.5]
    assert tokens[:, 1].tolist() == [18.5, 20.5, 26.5, 28.5]
    # pooling to the same grid is the identity, and upsampling back keeps the grid's values
    same = aggregate_patches(patch[None], (4, 4))[0]
    assert torch.equal(same.T.reshape(2, 4, 4), patch)
    up = upsample_patches(tokens[None], (2, 2), (2, 2))[0]
    assert torch.equal(up[0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    assert upsample_patches(tokens[None], (2, 2), (4, 4)).shape == (1, 2, 4, 4)


def test_window_group_is_cls_then_pooled_patches():
    cls = torch.tensor([[7.0, -7.0]])
    patch = torch.ones(1, 2, 2, 4)
    patch[:, :, :, 2:] = 3.0
    group = window_tokens(cls, patch, (1, 2))
    assert group.tolist() == [[[7.0, -7.0], [1.0, 1.0], [3.0, 3.0]]]


def test_interleave_alternates_event_and_frame_groups_in_time():
    b, t, k, c = 1, 3, 2, 1
    events = torch.tensor([10.0, 11.0, 20.0, 21.0, 30.0, 31.0]).reshape(b, t, k, c)
    frames = -events
    seq = interleave(events, frames)[0, :, 0].tolist()
    assert seq == [10, 11, -10, -11, 20, 21, -20, -21, 30, 31, -30, -31]
    assert modality_ids(t, k).tolist() == [EVENT, EVENT, FRAME, FRAME] * 3
    assert interleave(events, None)[0, :, 0].tolist() == [10, 11, 20, 21, 30, 31]
    assert modality_ids(t, k, with_frames=False).tolist() == [EVENT] * 6
    with pytest.raises(ValueError, match="differ"):
        interleave(events, frames[:, :2])


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("target", ["group", "token"])
def test_later_tokens_never_change_earlier_predictions(residual, target):
    model = tiny(residual, target)
    k = model.config.group_size
    tokens = torch.randn(2, 4 * 2 * k, 8)
    mods = modality_ids(4, k)
    with torch.no_grad():
        base = model(tokens, mods)
        for cut in (1, 5, 13, len(mods) - 1):
            changed = tokens.clone()
            changed[:, cut:] += torch.randn_like(changed[:, cut:]) * 5
            out = model(changed, mods)
            assert torch.equal(out[:, :cut], base[:, :cut])  # exact: masked, not just small
            assert not torch.allclose(out[:, cut:], base[:, cut:])


@pytest.mark.parametrize("target", ["group", "token"])
def test_residual_model_without_update_is_copy_last(target):
    cfg = GEPConfig(token_dim=8, width=16, depth=1, num_heads=2, agg_grid=(1, 2), max_windows=3,
                    target=target)
    model = GEPTransformer(cfg).eval()
    torch.nn.init.zeros_(model.head.weight)  # no learned update: exactly copy-last
    k = cfg.group_size
    tokens = torch.randn(1, 3 * 2 * k, 8)
    with torch.no_grad():
        pred = model(tokens, modality_ids(3, k))
    period, shift = 2 * k, (k if target == "group" else 1)
    # position i predicts token i + shift as that token one window earlier
    d = period - shift
    assert torch.equal(pred[:, d:], tokens[:, :tokens.shape[1] - d])
    # the loss scores exactly the targets after the first window
    errors = model.next_token_errors(pred, tokens)
    assert errors.shape == (1, tokens.shape[1] - period, 8)
    assert torch.equal(errors, ((tokens[:, :-period] - tokens[:, period:])
                                / model.token_std) ** 2)


@pytest.mark.parametrize("target", ["group", "token"])
def test_residual_over_the_mean_of_the_last_two_windows(target):
    """reference: mean_last2 without a learned update predicts each slot as the mean of that
    slot in the two windows before (copy-last where only one window came before), causally."""
    cfg = GEPConfig(token_dim=8, width=16, depth=1, num_heads=2, agg_grid=(1, 2), max_windows=4,
                    target=target, reference="mean_last2")
    model = GEPTransformer(cfg).eval()
    torch.nn.init.zeros_(model.head.weight)
    k = cfg.group_size
    period, shift = 2 * k, (k if target == "group" else 1)
    tokens = torch.randn(1, 4 * period, 8)
    with torch.no_grad():
        pred = model(tokens, modality_ids(4, k))
    for i in range(period - shift, tokens.shape[1] - shift):
        j = i + shift  # the predicted token
        expected = (tokens[:, j - period] + tokens[:, j - 2 * period]) / 2 if j >= 2 * period \
            else tokens[:, j - period]
        torch.testing.assert_close(pred[:, i], expected)
    changed = tokens.clone()
    changed[:, 10:] += 3.0
    with torch.no_grad():
        assert torch.equal(model(changed, modality_ids(4, k))[:, :10], pred[:, :10])
    with pytest.raises(ValueError, match="reference must be"):
        GEPConfig(reference="median")


def test_group_rollout_takes_a_whole_group_per_pass():
    model = tiny()
    k = model.config.group_size
    context = torch.randn(2, 2 * 2 * k, 8)
    ctx_mods = modality_ids(2, k)
    gen_mods = torch.cat([modality_ids(1, k), torch.full((k,), EVENT)])
    out = model.generate(context, ctx_mods, gen_mods)
    with torch.no_grad():
        first = model(context, ctx_mods)[:, -k:]
        second = model(torch.cat([context, first], 1), torch.cat([ctx_mods, gen_mods[:k]]))
    assert out.shape == (2, 3 * k, 8)
    torch.testing.assert_close(out[:, :k], first)
    torch.testing.assert_close(out[:, k:2 * k], second[:, -k:])
    with pytest.raises(ValueError, match="whole groups"):
        model.generate(context, ctx_mods, gen_mods[:-1])


def test_cached_rollout_equals_full_reforward():
    model = tiny(target="token")
    k = model.config.group_size
    context = torch.randn(3, 2 * 2 * k, 8)
    ctx_mods = modality_ids(2, k)
    gen_mods = torch.cat([modality_ids(1, k), torch.full((k,), EVENT)])
    fast = model.generate(context, ctx_mods, gen_mods)
    seq, mods = context, ctx_mods
    with torch.no_grad():
        for m in gen_mods.tolist():
            nxt = model(seq, mods)[:, -1:]
            seq = torch.cat([seq, nxt], dim=1)
            mods = torch.cat([mods, torch.tensor([m])])
    assert fast.shape == (3, len(gen_mods), 8)
    torch.testing.assert_close(fast, seq[:, context.shape[1]:], rtol=1e-5, atol=1e-5)


def test_context_longer_than_the_model_is_refused():
    model = tiny()
    k = model.config.group_size
    with pytest.raises(ValueError, match="exceed the context"):
        model(torch.zeros(1, 5 * 2 * k, 8), modality_ids(5, k))


def test_tiny_transformer_learns_a_moving_pattern(tmp_path):
    """Scenes whose tokens drift by a fixed step per window: copy-last is off by that step, a
    trained model learns it and beats copy-last by far."""
    torch.manual_seed(1)
    cfg = GEPConfig(token_dim=8, width=32, depth=2, num_heads=2, agg_grid=(1, 1), max_windows=4)
    model = GEPTransformer(cfg)
    k = cfg.group_size
    mods = modality_ids(4, k)
    step = torch.randn(1, 1, 2, k, 8)

    def batch(n: int) -> torch.Tensor:
        windows = torch.randn(n, 1, 2, k, 8) * 0.1 + step * torch.arange(4).view(1, 4, 1, 1, 1)
        return interleave(windows[:, :, 0], windows[:, :, 1])  # (n, T, 2, K, C) -> sequence

    test = batch(64)
    with torch.no_grad():
        before = float(model.next_token_loss(test, mods))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = model.next_token_loss(batch(32), mods)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = float(model.next_token_loss(test, mods))
    assert after < 0.3 * before, (before, after)
    # save / load round trip keeps predictions
    loaded = load_gep(save_gep(model, tmp_path / "gep"))
    with torch.no_grad():
        torch.testing.assert_close(loaded(test, mods), model(test, mods))
