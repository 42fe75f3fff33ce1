"""The shipped default model (issue 9): it loads through load_model, fits the size budget, and on
the held-out demo recording (a seed no training set uses) it beats the best constant predictors
of depth and semantics, computed from that recording's own ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from event_fm.common.stamps import stamp_to_ns
from event_fm.evaluation.scoring import GroundTruth, Outputs, score
from event_fm.io.rosbag import BagReader
from event_fm.models import load_model
from event_fm.models.checkpoint import read_meta
from event_fm.pipeline.engine import EngineConfig, PerceptionEngine

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "models" / "default"
DEMO_BAG = REPO / "demo" / "bag"


def test_default_checkpoint_is_the_trained_model_within_budget():
    config = json.loads((DEFAULT / "config.json").read_text())["config"]
    assert "smoke" not in read_meta(DEFAULT)["note"]
    assert config["merged"] and not config["with_teacher"]
    assert (DEFAULT / "model.safetensors").stat().st_size < 20 * 2**20
    model = load_model(DEFAULT)
    assert {"depth", "segmentation", "matching"} <= set(model.heads)


@pytest.fixture(scope="module")
def demo_outputs() -> tuple[Outputs, GroundTruth]:
    """Every frame-ending window of the demo recording through the perception engine."""
    engine = PerceptionEngine.from_checkpoint(DEFAULT, EngineConfig(window_mode="frame",
                                                                    device="cpu"))
    outputs = Outputs()
    with BagReader(DEMO_BAG) as bag:
        for message in bag.messages(["/event_camera/events", "/camera/image_raw"]):
            msg = bag.deserialize(message)
            if message.topic == "/camera/image_raw":
                engine.add_frame(stamp_to_ns(msg.header.stamp))
            else:
                engine.add_packet(msg)
            while (spec := engine.next_window()) is not None:
                result = engine.process(spec, {"depth", "semantic"})
                if result.get("depth") is not None and not result.held:
                    outputs.depth[result.stamp_ns] = result.get("depth")
                    outputs.semantic[result.stamp_ns] = result.get("semantic")
    return outputs, GroundTruth.from_bag(DEMO_BAG)


def test_default_model_beats_constant_predictors_on_held_out_bag(demo_outputs):
    outputs, gt = demo_outputs
    model = score(outputs, gt)
    assert model["scored_windows"]["depth"] >= 20

    # The best constants in hindsight: the median near depth and the most frequent class.
    stamps = [s for s in outputs.depth if s in gt.depth]
    near = np.concatenate([gt.depth[s][(gt.depth[s] > 0) & (gt.depth[s] < 10)] for s in stamps])
    labels = np.concatenate([gt.semantic[s].ravel() for s in stamps if s in gt.semantic])
    majority = np.bincount(labels[labels < 255]).argmax()
    shape = next(iter(outputs.depth.values())).shape
    constant = Outputs(depth={s: np.full(shape, np.median(near), np.float32) for s in stamps},
                       semantic={s: np.full(shape, majority, np.uint8) for s in stamps})
    baseline = score(constant, gt)
    assert model["depth_mae_10m"] < baseline["depth_mae_10m"]
    assert model["miou"] > baseline["miou"] + 0.05
