"""Task heads that run on either encoder's tokens (trained on the teacher, applied to events)."""

from .depth import DepthHead
from .matching import (
    MatchingHead,
    detect_keypoints,
    find_matches,
    mutual_nearest_neighbors,
    sample_descriptors,
)
from .segmentation import DSEC_CLASSES, SegmentationHead

__all__ = [
    "DSEC_CLASSES",
    "DepthHead",
    "MatchingHead",
    "SegmentationHead",
    "detect_keypoints",
    "find_matches",
    "mutual_nearest_neighbors",
    "sample_descriptors",
]
