"""``event-fm train forecast sample``: forecast after a point of a recording, save a PNG strip
(rows: true frames, forecast) and print the per-horizon MSE/SSIM."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from event_fm.models.forecast import FRAME_NS
from event_fm.pipeline.forecast import LiveForecaster, forecast_strip
from training.forecast.data import recording_frames
from training.forecast.metrics import mse, ssim


def run_sample(args: argparse.Namespace) -> None:
    forecaster = LiveForecaster.from_checkpoint(args.checkpoint)
    s = forecaster.settings
    if args.guide_frames is not None:
        s.guide_frames = args.guide_frames
    s.steps = args.steps
    cfg = forecaster.model.config
    rec = recording_frames(args.recording, cfg.bins, cfg.size)
    start = int(args.start_ms * 1e6 // FRAME_NS)
    if start + cfg.past + s.horizon > len(rec.frames):
        raise ValueError(f"{args.recording}: {len(rec.frames)} frames; start {start} + "
                         f"{cfg.past + s.horizon} does not fit")
    from event_fm.io import read_events
    from event_fm.io.events import concatenate

    batches = [b for b in read_events(args.recording) if len(b)]
    batches = [b for b in batches if b.topic == batches[0].topic]
    events = concatenate(batches)
    t_end = int(events["t"].min()) + (start + cfg.past) * FRAME_NS
    forecaster.observe(events[events["t"] <= t_end], t_end)
    result = forecaster.predict(t_end, rec.width, rec.height, stamp_ns=t_end)
    truth = rec.frames[start + cfg.past:start + cfg.past + s.horizon].float()
    pred = torch.from_numpy(result.frames)
    scale = float(np.abs(result.prompt).max()) or 1.0
    for h in (1, 5, 10):
        if h <= s.horizon:
            p, t = pred[h - 1] / scale, (truth[h - 1] / scale).clamp(-1, 1)
            print(f"h{h}: mse {float(mse(p, t)):.5f} ssim {float(ssim(p, t)):.4f}")
    strip_pred = forecast_strip(result)
    result.frames = truth.numpy()
    strip_true = forecast_strip(result)
    png = Path(args.png)
    png.parent.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(14, 3.2))
    for ax, img, title in zip(axes, (strip_true, strip_pred), ("truth", "forecast"), strict=True):
        ax.imshow(img)
        ax.set_axis_off()
        ax.set_title(f"{title}: last past frame, then +20 ms ... +{20 * s.horizon} ms",
                     fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
    print(f"forecast in {result.latency_s * 1e3:.0f} ms ({s.steps} steps, guide frames "
          f"{s.guide_frames}); strip {png}")
