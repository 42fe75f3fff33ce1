"""The one checkpoint format (issue 15): every kind round-trips through save/load, the JSON has
the fixed top-level shape, loading is strict, and a bad file fails naming itself."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import load_file, save_file

from event_fm.models import EventFM, EventFMConfig
from event_fm.models.checkpoint import (
    CheckpointError,
    embedded_checkpoint,
    kinds,
    load,
    read_kind,
    read_meta,
    save,
)
from event_fm.models.forecast import ForecastConfig, SimVP, SimVPConfig, VideoDenoiser
from event_fm.models.gep import GEPConfig, GEPTransformer
from event_fm.models.reconstruction import ReconstructionConfig, ReconstructionUNet


def tiny(kind: str) -> torch.nn.Module:
    """A small model of ``kind`` with its weights perturbed (so a round trip is not trivial)."""
    torch.manual_seed(0)
    model: torch.nn.Module
    if kind == "event_fm":
        model = EventFM(EventFMConfig(preset="tiny", img_size=(32, 32), heads=("depth",),
                                      with_teacher=False, lora_rank=2, depth_bins=8))
    elif kind == "forecast_diffusion":
        model = VideoDenoiser(ForecastConfig(frames=6, past=3, bins=3, size=16, patch=2,
                                             widths=[8, 16], emb_dim=16, heads=2,
                                             prompt_lengths=[1, 2]))
    elif kind == "forecast_simvp":
        model = SimVP(SimVPConfig(past=3, horizon=3, size=16, width=8, hidden=16,
                                  translator_blocks=1))
    elif kind == "gep":
        model = GEPTransformer(GEPConfig(token_dim=8, width=16, depth=1, num_heads=2,
                                         agg_grid=(1, 2), max_windows=2))
    else:
        model = ReconstructionUNet(ReconstructionConfig(widths=(4, 8), depths=(1, 1),
                                                        kinds=("fused", "mb"),
                                                        expand_ratios=(1.0, 2.0)))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


ALL_KINDS = ("event_fm", "forecast_diffusion", "forecast_simvp", "gep", "reconstruction")


def test_every_family_is_registered():
    assert set(ALL_KINDS) <= set(kinds())


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_round_trip_keeps_weights_config_and_meta(tmp_path, kind):
    model = tiny(kind)
    meta = {"source": "unit test", "sampling": {"steps": 2}}
    path = save(model, tmp_path / kind, kind, meta=meta)
    assert {p.name for p in path.iterdir()} == {"config.json", "model.safetensors"}
    document = json.loads((path / "config.json").read_text())
    assert list(document) == ["format_version", "kind", "config", "meta"]
    assert document["format_version"] == 1 and document["kind"] == kind
    assert "extra" not in document["config"]  # notes live under meta only
    assert read_meta(path) == meta and read_kind(path) == kind
    loaded = load(path, device="cpu")
    assert type(loaded) is type(model) and not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(),
                                 strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    if hasattr(model.config, "extra"):  # the in-memory view of meta
        assert loaded.config.extra == meta
    architecture = {k: v for k, v in asdict(model.config).items() if k != "extra"}
    assert {k: v for k, v in asdict(loaded.config).items() if k != "extra"} == architecture
    assert type(load(path / "model.safetensors")) is type(model)  # the weights file works too


def test_save_rejects_a_model_of_another_kind(tmp_path):
    with pytest.raises(TypeError, match="kind 'gep' saves GEPTransformer"):
        save(tiny("reconstruction"), tmp_path / "x", "gep")
    with pytest.raises(CheckpointError, match="unknown checkpoint kind 'nope'"):
        save(tiny("gep"), tmp_path / "x", "nope")


def test_loading_is_strict_about_weights(tmp_path):
    path = save(tiny("gep"), tmp_path / "gep", "gep")
    state = load_file(str(path / "model.safetensors"))
    save_file({**state, "stray.weight": torch.zeros(1)}, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected stray.weight"):
        load(path)
    # a tensor the model cannot fill in itself (not one of its optional_state buffers)
    missing = next(k for k in state if k not in GEPTransformer.optional_state)
    state.pop(missing)
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=f"missing {missing}"):
        load(path)


@pytest.mark.parametrize("kind", ["event_fm", "reconstruction"])
def test_a_huge_config_fails_before_allocating(tmp_path, kind):
    """Issue 17 case 4: dimensions that would need tens of GB are refused from the meta-device
    skeleton, in well under a second and without the memory."""
    import resource
    import time

    path = save(tiny(kind), tmp_path / kind, kind)
    key, value = {"event_fm": ("depth_bins", 50_000_000),
                  "reconstruction": ("widths", [65536, 131072])}[kind]
    rewrite(path, lambda d: d["config"].update({key: value}))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="GiB model, over the 8 GiB limit"):
        load(path)
    assert time.monotonic() - start < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 500_000  # kB


def test_a_config_that_disagrees_with_the_weights_names_the_tensor(tmp_path):
    path = save(tiny("event_fm"), tmp_path / "fm", "event_fm")
    rewrite(path, lambda d: d["config"].update(depth_bins=16))
    with pytest.raises(CheckpointError, match="in the weights, .* in the config"):
        load(path)


def rewrite(path, edit) -> None:
    document = json.loads((path / "config.json").read_text())
    edit(document)
    (path / "config.json").write_text(json.dumps(document))


def test_bad_configs_fail_naming_the_file(tmp_path):
    path = save(tiny("reconstruction"), tmp_path / "rec", "reconstruction")
    config_file = str(path / "config.json")

    rewrite(path, lambda d: d["config"].update(widthz=[1]))  # a typo in the architecture
    with pytest.raises(CheckpointError) as err:
        load(path)
    assert config_file in str(err.value) and "config.widthz" in str(err.value)
    assert "known:" in str(err.value) and "widths" in str(err.value)

    rewrite(path, lambda d: (d["config"].pop("widthz"), d.update(kind="hologram")))
    with pytest.raises(CheckpointError, match="unknown checkpoint kind 'hologram'") as err:
        load(path)
    assert config_file in str(err.value) and "reconstruction" in str(err.value)

    rewrite(path, lambda d: d.update(kind="reconstruction", comment="x"))
    with pytest.raises(CheckpointError, match="unknown key 'comment'"):
        read_meta(path)

    rewrite(path, lambda d: (d.pop("comment"), d.update(format_version=7)))
    with pytest.raises(CheckpointError, match="format_version 7"):
        load(path)

    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not JSON") as err:
        load(path)
    assert config_file in str(err.value)


def test_an_old_layout_is_named_as_such(tmp_path):
    path = save(tiny("reconstruction"), tmp_path / "rec", "reconstruction")
    document = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**document["config"], "extra": {}}))
    with pytest.raises(CheckpointError, match="not a version-1 checkpoint config") as err:
        load(path)
    assert str(path / "config.json") in str(err.value) and "old layout" in str(err.value)


def test_expect_guards_the_family(tmp_path):
    from event_fm.models import load_model
    from event_fm.models.forecast import load_forecaster

    path = save(tiny("gep"), tmp_path / "gep", "gep")
    with pytest.raises(CheckpointError, match="a 'gep' checkpoint, expected 'event_fm'"):
        load_model(path)
    with pytest.raises(CheckpointError, match="expected 'forecast_diffusion' or"):
        load_forecaster(path)


@pytest.mark.parametrize("name,kind", [("default", "event_fm"),
                                       ("forecast", "forecast_diffusion"),
                                       ("reconstruction", "reconstruction")])
def test_shipped_checkpoints_are_in_the_new_layout(name, kind):
    path = embedded_checkpoint(name)
    assert read_kind(path) == kind
    assert isinstance(read_meta(path), dict) and read_meta(path)
