"""The full-size path of issue 21 on the CPU (``make test-full``; CI runs it after ``make test``).

DUNE ViT-B/14 and DINOv2 ViT-S/14 at 448 px with random weights saved in their official
layouts: shards from simulated recordings -> heads -> distillation (killed and resumed) ->
export -> perception_node publishing depth, segmentation and pose over DDS -> REALM's corner
tiles on 480x640 and 720x1280 windows. A handful of steps, so minutes, not a training run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from helpers.official_layouts import randomize, to_dinov2_official, to_dune_official
from safetensors.torch import save_file

from event_fm.cli.main import main as cli_main
from event_fm.models import create_backbone, load_model
from event_fm.models.inference import plan_tiles

pytestmark = pytest.mark.full_size

REPO = Path(__file__).resolve().parents[1]
PRESETS = ("dune_vitb14_448", "dinov2_vits14")


def _weights(preset: str, folder: Path) -> Path:
    """Random weights of ``preset`` written in the layout its release uses."""
    backbone = create_backbone(preset)
    randomize(backbone)
    state = backbone.vit.state_dict()
    if preset.startswith("dune"):
        path = folder / "dune_vitb14_448.pth"  # DUNE's training checkpoint: model -> encoder.
        torch.save(to_dune_official(state), path)
    else:
        path = folder / "dinov2_vits14.safetensors"  # the hub's key names
        save_file(to_dinov2_official(state), str(path))
    return path


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("full_size_sim")
    for seed, scene in ((1, "street"), (2, "tabletop")):
        assert cli_main(["simulate", "--out", str(root / f"rec_{seed}"), "--scene", scene,
                         "--duration", "0.4", "--resolution", "320x240", "--seed", str(seed),
                         "--quiet"]) == 0
    return root


def _config(tmp: Path, preset: str, weights: Path, recordings: Path) -> Path:
    config = yaml.safe_load((REPO / "training/configs/full_size.yaml").read_text())
    config["out"] = str(tmp / "out")
    config["data"].update(root=str(tmp / "data"), recordings=[str(recordings / "rec_*")],
                          val_fraction=0.5, workers=1, samples_per_shard=4)
    config["model"].update(preset=preset, weights=str(weights))
    config["run"].update(batch_size=1, warmup_steps=0, log_every=1, checkpoint_every=1)
    config["heads"]["steps"] = 1
    config["distill"]["steps"] = 2
    path = tmp / "full_size.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module", params=PRESETS)
def trained(request, recordings, tmp_path_factory) -> dict:
    preset = request.param
    tmp = tmp_path_factory.mktemp(preset)
    weights = _weights(preset, tmp)
    config = _config(tmp, preset, weights, recordings)
    train = ["train", "distill"]
    assert cli_main([*train, "data", "--config", str(config)]) == 0
    assert cli_main([*train, "heads", "--config", str(config), "--threads", "2"]) == 0
    heads = tmp / "out" / "heads" / "model"
    distill = [*train, "distill", "--config", str(config), "--threads", "2",
               "--set", f"distill.init={heads}"]
    assert cli_main([*distill, "--steps", "1"]) == 0  # "killed" after one step ...
    assert cli_main(distill) == 0  # ... and resumed to two
    log = (tmp / "out" / "distill" / "log.csv").read_text().splitlines()
    exported = tmp / "exported"
    assert cli_main([*train, "export", "--config", str(config), "--checkpoint",
                     str(tmp / "out" / "distill" / "model"), "--to", str(exported)]) == 0
    return {"preset": preset, "tmp": tmp, "weights": weights, "log": log,
            "exported": exported, "recordings": recordings}


def test_distillation_starts_from_the_weights_file_and_resumes(trained):
    assert len(trained["log"]) == 1 + 2  # header + steps 1 and 2 (the resumed run appended)
    model = load_model(trained["exported"])
    assert model.config.preset == trained["preset"] and model.img_size == (448, 448)
    assert model.config.merged and model.teacher is None
    assert model.config.extra["backbone_weights"] == trained["weights"].name
    # the student's transformer started from the file: its layer norms carry the random values
    reference = create_backbone(trained["preset"], weights=trained["weights"])
    key = "blocks.0.norm1.weight"
    torch.testing.assert_close(model.encoder.backbone.vit.state_dict()[key],
                               reference.vit.state_dict()[key])


@pytest.mark.parametrize("size", [(480, 640), (720, 1280)])
def test_realm_corner_tiles_cover_the_sensor(trained, size):
    model = load_model(trained["exported"]).eval()
    tiles = plan_tiles(size, model.img_size, (448, 448))
    assert len(tiles) == {(480, 640): 4, (720, 1280): 6}[size]
    voxels = torch.randn(1, model.config.num_bins, *size)
    with torch.inference_mode():
        out = model.forward_events_tiled(voxels, heads=("depth", "segmentation"),
                                         tile_size=(448, 448), keep=("depth", "semantic_logits"))
    assert out["depth"].shape == (1, 1, *size)
    assert out["semantic_logits"].shape[-2:] == size
    lo, hi = model.config.depth_range
    assert torch.isfinite(out["depth"]).all()
    assert lo - 1e-3 <= float(out["depth"].min()) and float(out["depth"].max()) <= hi + 1e-3


def test_perception_node_publishes_depth_segmentation_and_pose(trained):
    """The exported checkpoint in perception_node (its own process, real DDS), fed one of the
    recordings by `event-fm eval`: at least one window of every output comes back."""
    out = trained["tmp"] / "eval"
    bag = trained["recordings"] / "rec_1"
    assert cli_main(["eval", str(bag), "--checkpoint", str(trained["exported"]), "--out",
                     str(out), "--rate", "0.02"]) == 0
    report = json.loads((out / "report.json").read_text())
    scored = report["metrics"]["scored_windows"]
    assert scored["depth"] >= 1 and scored["semantic"] >= 1 and scored["pose"] >= 1
    assert int(report["diagnostics"]["windows_processed"]) >= 2
