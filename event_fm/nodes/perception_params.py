"""perception_node's parameters (the single source for the node, the YAML and the launch file)."""

from __future__ import annotations

from event_fm.nodes.parameters import EVENT_MSG_TYPES, QOS_CHOICES, ParamSpec
from event_fm.pipeline.scheduler import WINDOW_MODES

HEADS = ("depth", "semantic", "pose", "image_pose", "forecast", "reconstruction")

PARAMS = [
    ParamSpec("checkpoint", "", "model directory or .safetensors file (empty: the embedded "
              "default model)"),
    ParamSpec("reconstruction_checkpoint", "", "event-to-image generator for ~/reconstruction "
              "(empty: the shipped models/reconstruction)"),
    ParamSpec("forecast_checkpoint", "", "diffusion forecaster for ~/forecast (empty: the "
              "shipped models/forecast)"),
    ParamSpec("forecast_method", "diffusion", "~/forecast from the diffusion forecaster (the "
              "residual over the motion-compensated frame) or from motion-compensated "
              "extrapolation of the past frames alone, along their dense flow ('motion') or "
              "one similarity fitted to it ('motion_similarity'); milliseconds, no sampling",
              choices=("diffusion", "motion", "motion_similarity")),
    ParamSpec("forecast_steps", 1, "denoising steps per forecast (1: the model's clean-sample "
              "estimate, ~80 ms on one CPU thread and the best scores in docs/forecast.md)",
              min=1, max=1000),
    ParamSpec("forecast_horizon", 10, "future 20 ms frames published (at most the model's)",
              min=1, max=100),
    ParamSpec("forecast_guide_frames", 4, "past frames injected by guided sampling (0: off)",
              min=0, max=16),
    ParamSpec("pose_source", "auto", "what ~/pose matches: 'event_matcher' (the XFeat-space "
              "event matcher, models/event_matcher), 'head' (the model's matching head), 'auto' "
              "(the matcher where it is installed)", choices=("auto", "event_matcher", "head")),
    ParamSpec("event_matcher_checkpoint", "", "event matcher for ~/pose and ~/image_pose "
              "(empty: the shipped models/event_matcher)"),
    ParamSpec("matcher_max_side", 320, "the event matcher sees windows shrunk to this many "
              "pixels on the longer side: its cost grows with pixels, and it was trained on "
              "240x180 windows", min=64, max=4096),
    ParamSpec("image_pose_reference", "latest_frame", "what ~/image_pose is relative to: the "
              "latest frame on image_topic, or keyframe_image",
              choices=("latest_frame", "keyframe")),
    ParamSpec("keyframe_image", "", "image file (PNG/JPEG) ~/image_pose is relative to when "
              "image_pose_reference is 'keyframe'; it takes the event camera's intrinsics, "
              "scaled to its size"),
    ParamSpec("device", "auto", "auto, cpu or cuda:N (auto: CUDA when available)"),
    ParamSpec("tile_size", [0, 0], "model tiles in sensor pixels [height, width]: [0, 0] tiles "
              "by the model's aspect ratio (as large as fit); e.g. [448, 448] for REALM's corner "
              "tiles of a 448 px model on 480x640 (four) or 720x1280 (six)", min=0, max=8192),
    ParamSpec("half", False, "run the model in half precision (CUDA only)"),
    ParamSpec("threads", 1, "CPU threads of the model, voxel grids and OpenCV (torch intra-op, "
              "numba, cv2); 1 keeps the worker from fighting the callbacks for cores", min=1,
              max=256),
    ParamSpec("inference_process", True, "run the model in a process of its own (the "
              "callbacks keep this one's GIL; a window inside one process costs ~2x)"),
    ParamSpec("event_topic", "events", "event packets from the driver; relative, so a remap "
              "(events:=/event_camera/events, as the launch file does) points it"),
    ParamSpec("event_msg_type", EVENT_MSG_TYPES[0], "message type of event_topic",
              choices=EVENT_MSG_TYPES),
    ParamSpec("event_qos", "best_effort", "QoS of the event subscription (drivers publish "
              "best_effort keep_last 1000)", choices=QOS_CHOICES),
    ParamSpec("event_qos_depth", 200, "history depth of the event subscription: DDS keeps this "
              "many packets allocated (200 x 0.8 MB at 50 Mev/s)", min=1, max=100_000),
    ParamSpec("image_topic", "", "camera frames: windows end at their stamps in 'frame' mode "
              "(empty: no image subscription)"),
    ParamSpec("camera_info_topic", "", "intrinsics for relative pose (empty: from the model "
              "config or none)"),
    ParamSpec("image_qos", "sensor_data", "QoS of image and camera_info subscriptions",
              choices=QOS_CHOICES),
    ParamSpec("image_qos_depth", 20, "image and camera_info queue depth", min=1, max=10_000),
    ParamSpec("window_mode", "rate", "how windows are cut", choices=WINDOW_MODES),
    ParamSpec("window_ms", 50.0, "window duration (ms) in 'rate' and 'frame' modes", min=0.1,
              max=10_000.0),
    ParamSpec("window_events", 150_000, "events per window in 'count' mode", min=1,
              max=100_000_000),
    ParamSpec("output_rate_hz", 20.0, "windows per second in 'rate' and 'count' modes", min=0.1,
              max=1000.0),
    ParamSpec("heads", list(HEADS[:3]), "outputs to compute (only those with subscribers run)",
              choices=HEADS),
    ParamSpec("memory_hold", True, "republish the last output when a window has too few events"),
    ParamSpec("memory_hold_min_events", 200, "fewer events than this count as 'no events'",
              min=0, max=100_000_000),
    ParamSpec("max_window_age_ms", 500.0, "drop windows older than this (ms) when behind",
              min=1.0, max=60_000.0),
    ParamSpec("buffer_max_events", 30_000_000, "event buffer capacity (15 B each: 450 MB)",
              min=10_000, max=2_000_000_000),
    ParamSpec("frame_id", "", "frame_id of outputs (empty: the event packets' frame_id)"),
    ParamSpec("publish_tf", False, "also publish the odometry on /tf: odom_frame -> base_frame "
              "(REP-105)"),
    ParamSpec("odom_frame", "event_fm_odom", "the odometry frame (~/odom, /tf parent)"),
    ParamSpec("base_frame", "", "the robot body tracked by ~/odom and /tf; the camera's pose "
              "on it comes from /tf_static (empty: the camera frame itself)"),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics", min=0.05, max=3600.0),
]

PARAM_NAMES = frozenset(p.name for p in PARAMS)
