"""Event encoder, RGB teacher, task heads and checkpoints (no ROS imports here).

Typical use::

    from event_fm.models import EventFM, EventFMConfig, load_model

    model = EventFM(EventFMConfig(preset="tiny"))          # or load_model("ckpt_dir")
    out = model.forward_events(voxels, heads=("depth",))    # voxels (B, bins, H, W)
    out["depth"]                                            # (B, 1, H, W) metres
"""

from .backbones import PRESETS, Backbone, BackbonePreset, create_backbone, get_preset
from .checkpoint import load_model, merge_lora, save_model
from .event_encoder import EventEncoder, VoxelEmbedder, normalize_voxels
from .heads import (
    DSEC_CLASSES,
    DepthHead,
    MatchingHead,
    SegmentationHead,
    detect_keypoints,
    find_matches,
    mutual_nearest_neighbors,
    sample_descriptors,
)
from .image_encoder import EncoderOutput, ImageEncoder, tokens_to_map
from .inference import MemoryHold, active_pixels, plan_tiles, tiled_forward
from .layouts import LayoutError, load_gep_student, load_realm_checkpoint
from .model import HEADS, EventFM, EventFMConfig
from .pose import RelativePose, estimate_relative_pose, rotation_error_deg
from .remap import load_backbone_weights, read_state_dict, remap_state_dict

__all__ = [
    "LayoutError",
    "load_gep_student",
    "load_realm_checkpoint",
    "DSEC_CLASSES",
    "HEADS",
    "PRESETS",
    "Backbone",
    "BackbonePreset",
    "DepthHead",
    "EncoderOutput",
    "EventEncoder",
    "EventFM",
    "EventFMConfig",
    "ImageEncoder",
    "MatchingHead",
    "MemoryHold",
    "RelativePose",
    "SegmentationHead",
    "VoxelEmbedder",
    "active_pixels",
    "create_backbone",
    "detect_keypoints",
    "estimate_relative_pose",
    "find_matches",
    "get_preset",
    "load_backbone_weights",
    "load_model",
    "merge_lora",
    "mutual_nearest_neighbors",
    "normalize_voxels",
    "plan_tiles",
    "read_state_dict",
    "remap_state_dict",
    "rotation_error_deg",
    "sample_descriptors",
    "save_model",
    "tiled_forward",
    "tokens_to_map",
]
