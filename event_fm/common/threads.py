"""Explicit CPU thread counts for torch, numba and OpenCV.

Why: each library picks "all cores" by default. On a 2-core robot computer a model forward with
2 intra-op threads took 565-606 ms instead of 15 ms with 1 when the other core was busy with the
subscription callbacks (issue 19): oversubscription, not the model, set the latency.
"""

from __future__ import annotations

import numba
import torch


def set_compute_threads(threads: int) -> dict[str, int]:
    """Use ``threads`` CPU threads in torch (intra-op, process-wide), OpenCV (process-wide) and
    numba's parallel kernels. numba's count is per calling thread: call this again from each
    thread that runs kernels (the engine's worker does). Returns what each library now uses."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    # numba first: starting its OpenMP-backed pool resets the OpenMP thread count that torch's
    # intra-op pool shares, so torch set before it read 2 threads again on a fresh process
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    used = {"numba": numba.get_num_threads()}
    try:
        import cv2
    except ImportError:  # OpenCV is optional for the core
        cv2 = None
    if cv2 is not None:
        cv2.setNumThreads(threads)
        used["opencv"] = cv2.getNumThreads()
    torch.set_num_threads(threads)
    used["torch"] = torch.get_num_threads()
    return used
