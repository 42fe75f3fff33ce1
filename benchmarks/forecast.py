"""Forecast sampling latency: the shipped diffusion forecaster, batch 1, 1 and 10 denoising steps,
with and without guided sampling (separate command; never part of the tests).

    scripts/with_env.sh python benchmarks/forecast.py [--checkpoint models/forecast] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from event_fm.models.forecast import load_forecaster, sample_forecast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="models/forecast")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_forecaster(args.checkpoint, args.device)
    cfg = model.config
    past = torch.rand(1, cfg.past, cfg.bins, cfg.size, cfg.size, device=args.device)
    print(f"{args.checkpoint}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
          f"parameters, {cfg.frames} frames of {cfg.bins}x{cfg.size}x{cfg.size}, "
          f"{args.threads} thread(s) on {args.device}")
    for steps in (1, 10):
        for guide in (0, cfg.past):
            times = []
            for _ in range(args.repeats + 1):
                t0 = time.perf_counter()
                sample_forecast(model, past, steps, 3, guide, 100)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            print(f"  {steps:2d} steps, guide frames {guide}: median "
                  f"{1e3 * np.median(times[1:]):.0f} ms (min {1e3 * min(times[1:]):.0f})")


if __name__ == "__main__":
    main()
