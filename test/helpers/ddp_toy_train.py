"""Entry point for the torchrun test: train the toy task and save the final weights."""

import sys

from helpers.toy_task import ToyTask
from training.runner import RunConfig, run

if __name__ == "__main__":
    cfg = RunConfig(out_dir=sys.argv[1], steps=int(sys.argv[2]), batch_size=8, lr=1e-2,
                    log_every=1, checkpoint_every=1000, device="cpu")
    run(ToyTask(dropout=0.0), cfg)  # no dropout: ranks draw different masks
