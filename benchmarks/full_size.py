"""Full-size foundation models on this machine (issue 21 item 1): time and peak memory of one
distillation step and of one perception window, DUNE ViT-B/14 and DINOv2 ViT-S/14 at 448 px.

Distillation: the `event-fm train distill distill` stage itself (frozen teacher on the frame,
LoRA-r32 student on the events, REALM's token loss) on shards of a simulated 320x240 recording,
batch 1 and 2, from the preset's random weights in timm's layout; seconds per step are the
runner's own (log.csv, median after the first step). Window: what perception_node runs per
window — the voxel grid and the tiled forward of depth + segmentation at the sensor size — with
REALM's 448 px corner tiles and with aspect-ratio tiles, on 480x640 and 720x1280. Every case
runs in a fresh process, so its peak RSS (ru_maxrss) is its own; the tiny shipped default is
measured in the same run as the peer.

    scripts/with_env.sh .venv/bin/python benchmarks/full_size.py [--device cpu|cuda]
        [--steps 4] [--threads 2] [--presets dune_vitb14_448 dinov2_vits14]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out" / "bench" / "full_size"
SENSORS = ((480, 640), (720, 1280))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker_distill(args) -> dict:
    import torch
    from safetensors.torch import save_file

    from event_fm.common.threads import set_compute_threads
    from event_fm.models import create_backbone
    from training.stages.steps import run_stage

    set_compute_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    _shards()
    weights = OUT / f"{args.preset}.safetensors"
    if not weights.exists():
        save_file(create_backbone(args.preset).vit.state_dict(), str(weights))
    config = {
        "data": {"root": str(OUT / "data")},
        "model": {"preset": args.preset, "weights": str(weights), "img_size": [448, 448],
                  "num_bins": 5, "depth_bins": 256, "lora_rank": 32, "lora_alpha": 32.0,
                  "lora_dropout": 0.1},
        "run": {"batch_size": args.batch, "lr": 1e-4, "warmup_steps": 0, "log_every": 1,
                "checkpoint_every": 10_000, "device": args.device},
        "distill": {"steps": args.steps, "losses": {"realm": 1.0}, "mask": "occupancy"},
    }
    out = OUT / f"distill_{args.preset}_b{args.batch}"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    run_stage("distill", config, out, args.steps, device=args.device)
    rows = list(csv.DictReader((out / "log.csv").open()))
    per_step = [float(r["sec_per_step"]) for r in rows[1:]] or [float(rows[0]["sec_per_step"])]
    cuda = (torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None
    return {"s_per_step": statistics.median(per_step), "peak_rss_mb": _peak_mb(),
            "cuda_peak_mb": cuda}


def _worker_window(args) -> dict:
    import numpy as np
    import torch

    from event_fm.common.threads import set_compute_threads
    from event_fm.io.events import make_events
    from event_fm.models import EventFM, EventFMConfig, load_model
    from event_fm.representations import voxel_grid

    set_compute_threads(args.threads)
    device = torch.device(args.device)
    if args.preset == "default":
        model = load_model(REPO / "models" / "default")
    else:
        model = EventFM(EventFMConfig(preset=args.preset, merged=True, with_teacher=False,
                                      depth_bins=256))
    model = model.to(device).eval()
    height, width = args.size
    rng = np.random.default_rng(0)
    n = 200_000
    events = make_events(rng.integers(0, width, n), rng.integers(0, height, n),
                         np.sort(rng.integers(0, 50_000_000, n)), rng.integers(0, 2, n))
    tile = (448, 448) if args.tiles == "realm" else None
    times = []
    for _ in range(args.repeat + 1):
        t0 = time.perf_counter()
        voxels = voxel_grid(events, model.config.num_bins, height, width, 0, 50_000_000,
                            device=device)
        with torch.inference_mode():
            out = model.forward_events_tiled(voxels[None], heads=("depth", "segmentation"),
                                             tile_size=tile, keep=("depth", "semantic_logits"),
                                             native=True)
            out["depth"].sum().item()
        times.append(time.perf_counter() - t0)
    from event_fm.models.inference import plan_tiles

    tiles = len(plan_tiles((height, width), model.img_size, tile))
    return {"s_per_window": statistics.median(times[1:]), "tiles": tiles,
            "peak_rss_mb": _peak_mb()}


def _spawn(*extra: str) -> dict:
    cmd = [sys.executable, __file__, *extra]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(extra)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _shards() -> None:
    if (OUT / "data").exists():
        return
    sim = OUT / "sim"
    subprocess.run([sys.executable, "-m", "event_fm.cli.main", "simulate", "--out", str(sim),
                    "--scene", "street", "--duration", "1", "--resolution", "320x240",
                    "--seed", "3", "--quiet", "--overwrite"], cwd=REPO, check=True)
    from training.stages.steps import run_stage

    run_stage("data", {"data": {"root": str(OUT / "data"), "recordings": [str(sim)],
                                "val_fraction": 0.0, "samples_per_shard": 8}}, OUT / "data",
              workers=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["dune_vitb14_448", "dinov2_vits14"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", choices=["distill", "window"], help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--tiles", default="realm", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        fn = _worker_distill if args.worker == "distill" else _worker_window
        print(json.dumps(fn(args)))
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    _shards()
    common = ["--device", args.device, "--threads", str(args.threads), "--repeat",
              str(args.repeat)]
    jobs = []
    for preset in args.presets:
        for batch in (1, 2):
            jobs.append(("distill", preset, batch, None, None))
    for preset in [*args.presets, "default"]:
        for size in SENSORS:
            for tiles in (("realm", "aspect") if preset != "default" else ("aspect",)):
                jobs.append(("window", preset, None, size, tiles))
    rows = []
    for kind, preset, batch, size, tiles in tqdm(jobs, unit="case"):
        extra = ["--worker", kind, "--preset", preset, *common]
        if kind == "distill":
            r = _spawn(*extra, "--batch", str(batch), "--steps", str(args.steps))
            rows.append(f"| {preset} | distill step, batch {batch}, 448x448 | - | "
                        f"{r['s_per_step']:.2f} s | {r['peak_rss_mb']:.0f} |")
        else:
            r = _spawn(*extra, "--size", *map(str, size), "--tiles", tiles)
            rows.append(f"| {preset} | window {size[0]}x{size[1]}, {tiles} tiles | "
                        f"{r['tiles']} | {r['s_per_window']:.2f} s | {r['peak_rss_mb']:.0f} |")
    table = "\n".join(["| model | case | tiles | time | peak RSS (MB) |", "|---|---|---|---|---|",
                       *rows])
    (OUT / "table.md").write_text(table + "\n")
    print(f"device {args.device}, {args.threads} thread(s)\n{table}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
