"""Entry point for the torchrun tests: train the toy task and save the final weights.

    ddp_toy_train.py OUT_DIR STEPS [STOP_AFTER] [CHECKPOINT_EVERY]
"""

import sys

from helpers.toy_task import ToyTask
from training.runner import RunConfig, run

if __name__ == "__main__":
    stop_after = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] != "-" else None
    every = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    cfg = RunConfig(out_dir=sys.argv[1], steps=int(sys.argv[2]), batch_size=8, lr=1e-2,
                    log_every=1, checkpoint_every=every, device="cpu")
    run(ToyTask(dropout=0.0), cfg, stop_after=stop_after)  # no dropout: ranks draw different masks
