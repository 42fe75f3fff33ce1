"""``event-fm train forecast evaluate``: every method on held-out simulated sequences and the
real bags; writes docs/forecast.md, docs/forecast.json and the plots docs/forecast_*.png."""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from event_fm.training.forecast.data import SequenceDataset, load_split
from event_fm.training.forecast.evaluate import (
    HORIZONS,
    DiffusionVariant,
    baseline_forecasts,
    diffusion_forecast,
    sampling_latency,
    score,
)
from event_fm.training.forecast.features import SegmentationProbe
from tqdm import tqdm

from event_fm.models.forecast import load_forecaster

log = logging.getLogger(__name__)

#: report rows: name -> description
METHODS = {
    "copy_last": "copy the last past frame",
    "zero": "predict no events",
    "simvp": "SimVP-style CNN (deterministic, MSE)",
    "diffusion_unguided": "diffusion, prompt as conditioning only",
    "diffusion": "diffusion + guided sampling (s = 4)",
    "diffusion_aligned_unguided": "diffusion + alignment, no guided sampling",
    "diffusion_aligned": "diffusion + guided sampling + alignment",
}
DOMAINS = {"sim": "held-out simulated (4 recordings, other seeds/layouts)",
           "real": "real bags (evt3 640x480, evt3 1280x720, davis346, 640x480 rollover)"}


def evaluation_windows(config: dict, domain: str, frames: int, past: int) -> SequenceDataset:
    data, ev = config["data"], config.get("evaluate", {})
    stride = int(data.get("eval_stride", {}).get(domain, 4))
    ds = SequenceDataset(load_split(data["root"], domain), frames, past, stride=stride,
                         min_prompt_events=1.0)
    limit = int(ev.get("max_sequences", {}).get(domain, len(ds)))
    if len(ds) > limit:  # evenly spaced, deterministic
        keep = np.linspace(0, len(ds) - 1, limit).round().astype(int)
        ds.index = [ds.index[i] for i in keep]
    return ds


def run_report(config: dict, out: Path, docs: Path, segmentation_checkpoint: str) -> dict:
    t_start = time.perf_counter()
    ev, samp = config.get("evaluate", {}), config.get("sampling", {})
    seed = int(ev.get("seed", 0))
    base = load_forecaster(out / "fit_diffusion" / "model")
    aligned_path = out / "align" / "model"
    aligned = load_forecaster(aligned_path) if aligned_path.exists() else None
    simvp_path = out / "fit_simvp" / "model"
    simvp = load_forecaster(simvp_path) if simvp_path.exists() else None
    probe = SegmentationProbe(segmentation_checkpoint)
    cfg = base.config
    steps, k = int(samp.get("steps", 10)), int(samp.get("prompt_length", 3))
    guide, tau = int(samp.get("guide_frames", 4)), int(samp.get("tau", 100))
    variants = {"diffusion_unguided": DiffusionVariant(base, 0, tau, steps, k),
                "diffusion": DiffusionVariant(base, guide, tau, steps, k)}
    if aligned is not None:
        variants["diffusion_aligned_unguided"] = DiffusionVariant(aligned, 0, tau, steps, k)
        variants["diffusion_aligned"] = DiffusionVariant(aligned, guide, tau, steps, k)
    report: dict = {}
    examples: dict = {}
    for domain in DOMAINS:
        ds = evaluation_windows(config, domain, cfg.frames, cfg.past)
        seqs = torch.stack([ds[i] for i in range(len(ds))])
        past, future = seqs[:, :cfg.past], seqs[:, cfg.past:]
        preds = baseline_forecasts(past, cfg.horizon, simvp)
        for name, variant in tqdm(variants.items(), desc=f"forecast {domain}", unit="model"):
            preds[name] = diffusion_forecast(variant, past, seed)
        report[domain] = score(preds, future, probe, int(ev.get("segmentation_sequences", 16)))
        report[domain]["sequences"] = len(ds)
        examples[domain] = (past, future, preds)
        log.info("%s: %d sequences scored", domain, len(ds))
    report["latency_s"] = {f"{n}_steps": sampling_latency(base, n, guide, tau) for n in (1, 10)}
    report["setup"] = {
        "frames": "3 bins per 20 ms, 128x128 center square crop (area resize), normalized by "
                  "the 4 past frames' max |value|",
        "past_frames": cfg.past, "horizon": cfg.horizon, "sampling_steps": steps,
        "prompt_length": k, "guide_frames": guide, "tau": tau,
        "segmentation_checkpoint": str(segmentation_checkpoint),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "parameters": {"diffusion": sum(p.numel() for p in base.parameters()),
                       "simvp": sum(p.numel() for p in simvp.parameters()) if simvp else 0},
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "forecast.json").write_text(json.dumps(report, indent=1))
    save_metric_plot(report, docs / "forecast_metrics.png")
    save_examples(examples, docs / "forecast_samples.png")
    align_png = out / "align" / "align.png"
    if align_png.exists():
        shutil.copy(align_png, docs / "forecast_align.png")
    (docs / "forecast_table.md").write_text(markdown_tables(report))
    print(markdown_tables(report))
    return report


def markdown_tables(report: dict) -> str:
    lines = []
    for domain, title in DOMAINS.items():
        r = report[domain]
        lines += [f"**{title}** - {r['sequences']} sequences; ground-truth mean |voxel| "
                  f"{r['ground_truth_mean_abs']:.4f}", "",
                  "| method | MSE h1 | MSE h5 | MSE h10 | SSIM h1 | SSIM h5 | SSIM h10 | "
                  "enc-FD h1 | enc-FD h5 | enc-FD h10 | seg mIoU h1 | h5 | h10 | mean abs |",
                  "|---|" + "---|" * 13]
        for name in METHODS:
            if name not in r:
                continue
            e = r[name]
            cells = [f"{e['mse'][f'h{h}']:.5f}" for h in HORIZONS]
            cells += [f"{e['ssim'][f'h{h}']:.4f}" for h in HORIZONS]
            cells += [f"{e['feature_fd'][f'h{h}']:.1f}" for h in HORIZONS]
            cells += [f"{e['seg_miou'][f'h{h}']:.3f}" for h in HORIZONS]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {e['mean_abs']:.4f} |")
        lines.append("")
    lat = report["latency_s"]
    lines.append(f"Sampling latency (batch 1, {report['setup']['torch_threads']} CPU thread): "
                 f"1 step {1e3 * lat['1_steps']:.0f} ms, 10 steps {1e3 * lat['10_steps']:.0f} ms.")
    return "\n".join(lines) + "\n"


def save_metric_plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for row, domain in enumerate(DOMAINS):
        for col, metric in enumerate(("mse", "ssim", "seg_miou")):
            ax = axes[row, col]
            for name in METHODS:
                if name in report[domain]:
                    ax.plot(HORIZONS, [report[domain][name][metric][f"h{h}"] for h in HORIZONS],
                            marker="o", label=name)
            ax.set_title(f"{domain}: {metric}")
            ax.set_xlabel("horizon (20 ms frames)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def save_examples(examples: dict, path: Path) -> None:
    """One sequence per domain: last past frame, true future and each method at h1/h5/h10."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from event_fm.pipeline.forecast import frame_to_rgb

    names = ["truth", *[n for n in METHODS if n in next(iter(examples.values()))[2]]]
    fig, axes = plt.subplots(len(examples) * len(names), 4,
                             figsize=(8, 2.0 * len(examples) * len(names)))
    r = 0
    for domain, (past, future, preds) in examples.items():
        i = int(np.argmax(future.abs().flatten(1).mean(1).numpy()))  # the busiest sequence
        vmax = float(future[i].sum(1).abs().max()) or 1.0
        for name in names:
            seq = future[i] if name == "truth" else preds[name][i]
            tiles = [past[i, -1], *[seq[h - 1] for h in HORIZONS]]
            for c, tile in enumerate(tiles):
                ax = axes[r, c]
                ax.imshow(frame_to_rgb(tile.numpy(), vmax))
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(f"{domain}\n{name}", fontsize=7)
                if r == 0:
                    ax.set_title(["last past", "h1", "h5", "h10"][c], fontsize=8)
            r += 1
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
