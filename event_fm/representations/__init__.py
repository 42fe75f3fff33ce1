"""Event representations for the encoders: voxel grids, histograms, Tencode, time surfaces,
display frames, distillation masks and window slicing.

Every representation takes events as a structured array, a dict of 1-D arrays/tensors or an
(N, 4) x, y, t, p tensor (see ``_inputs``), returns a torch tensor, and runs on the ``torch``
backend (CPU or CUDA, sync-free scatters) or the ``numba`` backend (CPU loops). Pass a dict as
``stats`` to learn how many events were looked at and dropped (outside sensor / window).
"""

from event_fm.representations._inputs import Events
from event_fm.representations.frame import event_frame
from event_fm.representations.histogram import stacked_histogram
from event_fm.representations.masks import (
    activation_mask,
    activation_mask_from_events,
    dilate,
    occupancy_mask,
    occupancy_mask_from_events,
    patch_sums,
)
from event_fm.representations.normalization import (
    NORMALIZATIONS,
    normalize,
    normalize_sequence,
)
from event_fm.representations.tencode import tencode
from event_fm.representations.time_surface import time_surface
from event_fm.representations.voxel import voxel_grid, voxel_grid_batch
from event_fm.representations.windows import (
    Windows,
    fixed_count_windows,
    fixed_duration_windows,
    windows_ending_at,
)

__all__ = [
    "NORMALIZATIONS",
    "Events",
    "Windows",
    "activation_mask",
    "activation_mask_from_events",
    "dilate",
    "event_frame",
    "fixed_count_windows",
    "fixed_duration_windows",
    "normalize",
    "normalize_sequence",
    "occupancy_mask",
    "occupancy_mask_from_events",
    "patch_sums",
    "stacked_histogram",
    "tencode",
    "time_surface",
    "voxel_grid",
    "voxel_grid_batch",
    "windows_ending_at",
]
