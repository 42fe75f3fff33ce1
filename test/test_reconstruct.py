"""Event-to-image reconstruction (LLM-EvRep): blocks, generator, losses, judges, data, fit,
evaluation, CLI, and the pipeline runner the node uses. Tiny models and data made here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from event_fm.dataset.shards import Sample, ShardWriter
from event_fm.io import make_events
from event_fm.models import EventFM, EventFMConfig, save_model
from event_fm.models.reconstruction import (
    ReconstructionConfig,
    ReconstructionUNet,
    load_generator,
    save_generator,
)
from event_fm.models.reconstruction_blocks import FusedMBConv, MBConv, make_block
from event_fm.pipeline.reconstruction import ReconstructionRunner
from training.reconstruct.data import PairDataset, build_split, load_split
from training.reconstruct.evaluate import mse, score_images, ssim
from training.reconstruct.judges import (
    Judge,
    SegmentationJudge,
    jaccard,
    jaccard_distance,
    make_judge,
    words_of,
)
from training.reconstruct.losses import (
    JudgeSurrogate,
    sobel,
    sobel_loss,
    soft_jaccard_distance,
)

TINY = dict(widths=(4, 8), depths=(1, 1), kinds=("fused", "mb"), expand_ratios=(1.0, 2.0))
H, W = 24, 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_eventfm(road_bias: bool = False) -> EventFM:
    torch.manual_seed(0)
    model = EventFM(EventFMConfig(preset="tiny", img_size=(32, 32), heads=("segmentation",),
                                  embedder_widths=(4, 8, 8, 8))).eval()
    if road_bias:  # a head that sees only 'road' (class 5), whatever the image
        seg = model.heads["segmentation"].classifier
        torch.nn.init.zeros_(seg.weight)
        torch.nn.init.zeros_(seg.bias)
        seg.bias.data[5] = 10.0
    return model


# -- blocks and generator -------------------------------------------------------------------

def test_blocks_keep_or_halve_resolution_and_skip_only_when_shapes_match():
    x = torch.randn(2, 8, 10, 14)
    assert MBConv(8, 8).has_skip and FusedMBConv(8, 8).has_skip
    assert not MBConv(8, 16).has_skip and not FusedMBConv(8, 8, stride=2).has_skip
    assert MBConv(8, 16, stride=2)(x).shape == (2, 16, 5, 7)
    assert FusedMBConv(8, 12, stride=2, expand_ratio=1.0)(x).shape == (2, 12, 5, 7)
    with pytest.raises(ValueError, match="unknown block kind"):
        make_block("conv", 8, 8)


def test_generator_any_size_in_unit_range_and_checkpoint_roundtrip(tmp_path):
    model = ReconstructionUNet(ReconstructionConfig(**TINY)).eval()
    x = torch.rand(2, 3, 23, 37)  # odd sizes: upsampling follows the skips
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, 23, 37) and 0 <= float(y.min()) and float(y.max()) <= 1
    default = ReconstructionUNet()
    assert 50_000 < default.num_parameters() < 1_000_000  # < 5 MB as float32
    save_generator(model, tmp_path / "gen")
    again = load_generator(tmp_path / "gen")
    with torch.no_grad():
        torch.testing.assert_close(again(x), y)
    assert json.loads((tmp_path / "gen" / "config.json").read_text())["config"]["widths"] == [4, 8]
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_generator(tmp_path / "nothing")
    with pytest.raises(ValueError, match="one entry per stage"):
        ReconstructionConfig(widths=(4, 8), depths=(1,), kinds=("mb", "mb"),
                             expand_ratios=(1, 1))


# -- losses ----------------------------------------------------------------------------------

def test_sobel_on_known_images():
    flat = torch.full((1, 1, 5, 6), 0.5)  # exact in binary
    assert float(sobel(flat).abs().max()) == 0.0  # replicate padding: no border edges
    step = torch.zeros(1, 1, 5, 6)
    step[..., 3:] = 1.0  # vertical edge between columns 2 and 3
    edges = sobel(step)
    gx, gy = edges[0, 0], edges[0, 1]
    expected_row = torch.tensor([0.0, 0.0, 4.0, 4.0, 0.0, 0.0])  # 1 + 2 + 1 on each side
    torch.testing.assert_close(gx, expected_row.expand(5, 6))
    assert float(gy.abs().max()) == 0.0
    # MSE of the edge maps: 2 columns of 16 out of 2 * 5 * 6 responses
    assert float(sobel_loss(step, flat)) == pytest.approx(2 * 5 * 16 / 60)
    assert float(sobel_loss(step + 0.25, step)) == 0.0  # blind to brightness offsets
    rgb = torch.rand(2, 3, 8, 8)
    assert sobel(rgb).shape == (2, 6, 8, 8)


def test_soft_jaccard_distance_on_known_vectors():
    a = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    b = torch.tensor([[0.5, 0.0, 0.5], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    d = soft_jaccard_distance(a, b)
    torch.testing.assert_close(d, torch.tensor([1 - 0.5 / 1.5, 0.0, 0.0]))


def test_judge_surrogate_is_zero_for_identical_images_and_trains_only_the_input():
    model = tiny_eventfm()
    judge = JudgeSurrogate(model)
    real = torch.rand(2, 3, H, W)
    same = judge(real.clone(), real)
    assert float(same["feature"]) == pytest.approx(0.0, abs=1e-5)
    assert float(same["classes"]) == pytest.approx(0.0, abs=1e-5)
    generated = torch.rand(2, 3, H, W, requires_grad=True)
    out = judge(generated, real)
    assert float(out["feature"].detach()) > 1e-4
    out["judge"].backward()
    assert generated.grad is not None and float(generated.grad.abs().sum()) > 0
    assert all(p.grad is None for p in judge.parameters())
    judge.train()
    assert not judge.training and not judge.teacher.training
    with pytest.raises(ValueError, match="teacher"):
        JudgeSurrogate(EventFM(EventFMConfig(preset="tiny", img_size=(32, 32),
                                             with_teacher=False)))


# -- judges ------------------------------------------------------------------------------------

def test_jaccard_on_known_sets_and_words():
    assert jaccard({"car", "road"}, {"road", "person", "car", "pole"}) == 0.5
    assert jaccard_distance({"car"}, {"tree"}) == 1.0
    assert jaccard(set(), set()) == 1.0 and jaccard({"a"}, set()) == 0.0
    assert words_of("The image shows a red car on the road, and 2 people.") == {
        "red", "car", "road", "people"}


def test_segmentation_judge_reports_the_classes_it_sees():
    judge = SegmentationJudge(tiny_eventfm(road_bias=True), min_fraction=0.01)
    assert isinstance(judge, Judge)
    images = [np.zeros((H, W, 3), np.uint8), np.full((40, 20, 3), 200, np.uint8)]
    assert judge.describe_batch(images) == [{"road"}, {"road"}]
    fractions = judge.class_fractions(images)
    np.testing.assert_allclose(fractions.sum(1), 1.0)
    assert fractions[0, 5] == 1.0
    free = SegmentationJudge(tiny_eventfm(), min_fraction=0.0)  # random head: several classes
    seen = free.describe(np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8))
    assert seen and seen <= set(free.class_names)
    with pytest.raises(ValueError, match="HxWx3"):
        judge.describe_batch([np.zeros((H, W), np.uint8)])
    with pytest.raises(FileNotFoundError, match="no local model directory"):
        make_judge("vlm", "/nonexistent/vlm")
    with pytest.raises(ValueError, match="unknown judge"):
        make_judge("oracle", "x")


# -- metrics -----------------------------------------------------------------------------------

def test_ssim_and_mse_on_known_images():
    rng = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 32, 32, generator=rng)
    assert torch.allclose(ssim(a, a), torch.ones(2), atol=1e-6)
    assert float(ssim(a, 1 - a).mean()) < 0
    assert torch.allclose(mse(a, a + 0.1), torch.full((2,), 0.01), atol=1e-6)
    frames = (a.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    score = score_images(frames, frames)
    assert score["ssim"] == pytest.approx(1.0) and score["mse"] == 0.0


# -- data, fit, evaluate, CLI ------------------------------------------------------------------

def _write_shards(root, split: str, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    writer = ShardWriter(root / split / f"rec_{seed}", samples_per_shard=4)
    for i in range(n):
        t_end = (i + 1) * 50_000_000
        k = 400
        events = make_events(rng.integers(0, W, k), rng.integers(0, H, k),
                             np.sort(rng.integers(t_end - 50_000_000, t_end, k)),
                             rng.integers(0, 2, k))
        clean = np.full((H, W, 3), 10 * i, np.uint8)
        writer.add(Sample(events=events, t_start=t_end - 50_000_000, t_end=t_end,
                          stamp_ns=10**18 + t_end, width=W, height=H, image=clean // 2,
                          image_clean=clean if split != "train" else None,
                          source=f"rec_{seed}"))
    writer.close()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    _write_shards(root, "train", 8, 1)
    _write_shards(root, "heldout", 4, 2)
    return root


def test_data_pairs_use_the_clean_frame_and_crop(shards, tmp_path):
    info = build_split(shards, "heldout", tmp_path / "h.npz", stride=2, progress=False)
    assert info["samples"] == 2
    arrays = load_split(tmp_path / "h.npz")
    assert arrays["tencode"].shape == (2, 3, H, W) and arrays["tencode"].dtype == np.uint8
    assert set(np.unique(arrays["tencode"][:, 0])) <= {0, 255}  # binary ON channel
    assert arrays["frame"][1, 0, 0, 0] == 20 and arrays["delivered"][1, 0, 0, 0] == 10
    assert arrays["event_frame"].shape == (2, H, W, 3)
    x, y = PairDataset(arrays, crop=(16, 16), flip=True)[0]
    assert x.shape == y.shape == (3, 16, 16) and float(y.max()) <= 1.0
    with pytest.raises(FileNotFoundError, match="reconstruct data"):
        load_split(tmp_path / "missing.npz")


def test_cli_data_fit_evaluate_report_on_tiny_data(shards, tmp_path, capsys):
    from training.cli import main

    judge_ckpt = save_model(tiny_eventfm(), tmp_path / "judge")
    config = {
        "out": str(tmp_path / "rec"),
        "data": {"shards": str(shards), "heldout": ["heldout"],
                 "splits": {"train": {"split": "train", "stride": 1},
                            "heldout": {"split": "heldout", "stride": 1}}},
        "judge": {"kind": "segmentation", "checkpoint": str(judge_ckpt), "min_fraction": 0.01},
        "fit": {"steps": 3, "batch_size": 2, "crop": [16, 16], "warmup_steps": 1,
                "log_every": 1, "model": TINY},
        "report": {"docs": str(tmp_path / "docs"), "examples": 2},
    }
    import yaml

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config))
    base = ["reconstruct"]
    assert main(base + ["data", "--config", str(path)]) == 0
    assert main(base + ["fit", "--config", str(path), "--losses", "sobel", "--device", "cpu"]) == 0
    assert main(base + ["fit", "--config", str(path), "--losses", "sobel+judge",
                        "--device", "cpu"]) == 0
    log = (tmp_path / "rec" / "fit_full" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,loss,sobel,judge_feature,judge_classes") and len(log) == 4
    assert np.isfinite(float(log[-1].split(",")[1]))
    gen = load_generator(tmp_path / "rec" / "fit_full" / "model")
    assert gen.config.extra["losses"] == "sobel+judge" and gen.config.extra["steps_done"] == 3
    assert main(base + ["report", "--config", str(path), "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "docs" / "reconstruction.json").read_text())
    assert set(report) == {"event_frame", "sobel_only", "full"}
    for row in report.values():
        assert set(row) == {"ssim", "mse", "judge_jaccard"}
        assert -1 <= row["ssim"] <= 1 and 0 <= row["mse"] <= 1 and 0 <= row["judge_jaccard"] <= 1
    assert (tmp_path / "docs" / "reconstruction_heldout.png").stat().st_size > 1000
    assert "| method | SSIM |" in (tmp_path / "docs" / "reconstruction.md").read_text()
    capsys.readouterr()
    assert main(base + ["fit", "--config", str(path), "--losses", "sobel+judge",
                        "--judge-checkpoint", str(tmp_path / "nope")]) == 1
    assert "judge checkpoint not found" in capsys.readouterr().err


# -- the runner the node uses -------------------------------------------------------------------

def test_runner_turns_a_window_into_an_rgb_image(tmp_path):
    save_generator(ReconstructionUNet(ReconstructionConfig(**TINY)), tmp_path / "gen")
    runner = ReconstructionRunner.from_checkpoint(tmp_path / "gen")
    rng = np.random.default_rng(0)
    events = make_events(rng.integers(0, W, 500), rng.integers(0, H, 500),
                         np.sort(rng.integers(0, 10_000, 500)), rng.integers(0, 2, 500))
    image = runner(events, H, W, 0, 10_000)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert runner(events[:0], H, W, 0, 10_000).shape == (H, W, 3)  # empty window: still an image
    with pytest.raises(FileNotFoundError, match="reconstruction checkpoint not found"):
        ReconstructionRunner.from_checkpoint(tmp_path / "missing")


def test_shipped_generator_loads_and_is_small():
    runner = ReconstructionRunner.from_checkpoint(None)  # models/reconstruction
    size = sum(f.stat().st_size for f in runner_dir().iterdir())
    assert size < 5 * 2**20
    assert runner.generator.config.extra.get("losses") == "sobel+judge"


def runner_dir():
    from event_fm.pipeline.reconstruction import default_reconstruction_checkpoint

    return default_reconstruction_checkpoint()


def test_engine_computes_reconstruction_only_when_asked(tmp_path):
    from event_fm.pipeline.engine import PerceptionEngine
    from event_fm.pipeline.reconstruction import ReconstructionOutput
    from event_fm.pipeline.scheduler import WindowSpec

    save_generator(ReconstructionUNet(ReconstructionConfig(**TINY)), tmp_path / "gen")
    model = EventFM(EventFMConfig(preset="tiny", img_size=(32, 32), heads=("depth",),
                                  embedder_widths=(4, 8, 8, 8), with_teacher=False))
    engine = PerceptionEngine(model)
    assert "reconstruction" not in engine.available
    engine.register(ReconstructionOutput(ReconstructionRunner.from_checkpoint(tmp_path / "gen")))
    assert "reconstruction" in engine.available
    rng = np.random.default_rng(0)
    engine.ingest.decoder.width, engine.ingest.decoder.height = W, H
    events = make_events(rng.integers(0, W, 2000), rng.integers(0, H, 2000),
                         np.sort(rng.integers(0, 100_000_000, 2000)), rng.integers(0, 2, 2000))
    engine.buffer.append(events)
    spec = WindowSpec(t_start=0, t_end=50_000_000, stamp_ns=123)
    only = engine.process(spec, {"reconstruction"})
    assert only.get("reconstruction").shape == (H, W, 3) and only.get("depth") is None
    assert "infer" not in only.latency_s and only.latency_s["reconstruct"] > 0
    spec = WindowSpec(t_start=50_000_000, t_end=100_000_000, stamp_ns=456)
    depth_only = engine.process(spec, {"depth"})
    assert depth_only.get("reconstruction") is None and depth_only.get("depth").shape == (H, W)


def test_report_skips_a_held_out_set_with_the_same_inputs(tmp_path):
    from training.reconstruct.report import write_report

    rng = np.random.default_rng(0)
    pics = {k: rng.integers(0, 255, (2, H, W, 3), np.uint8)
            for k in ("event_frame", "sobel_only", "full", "real")}
    row = {"ssim": 0.5, "mse": 0.1, "judge_jaccard": 0.25, "samples": 2}
    rows = {k: {**row, "per_split": {"a": row, "b": row}}
            for k in ("event_frame", "sobel_only", "full")}
    other = {**pics, "real": pics["real"][::-1].copy()}
    paths = write_report({"rows": rows, "images": {"a": pics, "b": dict(pics), "c": other}},
                         tmp_path, {}, examples=2)
    assert [p.split("/")[-1] for p in paths["figures"]] == ["reconstruction_a.png",
                                                           "reconstruction_c.png"]
    assert "`b` holds the same events and clean frames as `a`" in paths["md"].read_text()
    assert json.loads(paths["json"].read_text())["full"] == {"ssim": 0.5, "mse": 0.1,
                                                             "judge_jaccard": 0.25}
