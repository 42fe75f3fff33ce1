"""Synthetic data engine: video-to-events simulation and procedural 3D scenes with ground truth.

- :func:`simulate_from_frames` turns any frame sequence (your own footage) into events,
- :class:`SceneSimulator` renders a procedural scene (street, highway, park, room) along a smooth
  camera trajectory and yields frames with events, depth, semantics and pose,
- :func:`write_sim_bag` stores either as a rosbag2 laid out like a real robot recording.

No ROS needed; ``event-fm simulate`` is the command-line front end.
"""

from event_fm.sim.bag_output import TOPICS, write_sim_bag
from event_fm.sim.camera import Intrinsics, Trajectory
from event_fm.sim.classes import CLASS_NAMES, IGNORE
from event_fm.sim.degrade import DegradeParams
from event_fm.sim.esim import EsimParams, EventSimulator, log_intensity, simulate_from_frames
from event_fm.sim.pipeline import SceneSimulator, SimConfig, SimFrame, simulate_video
from event_fm.sim.render import Renderer, RenderOutput
from event_fm.sim.scene import SCENE_KINDS, Scene, generate_scene

__all__ = [
    "CLASS_NAMES", "IGNORE", "SCENE_KINDS", "TOPICS", "DegradeParams", "EsimParams",
    "EventSimulator", "Intrinsics", "RenderOutput", "Renderer", "Scene", "SceneSimulator",
    "SimConfig", "SimFrame", "Trajectory", "generate_scene", "log_intensity",
    "simulate_from_frames", "simulate_video", "write_sim_bag",
]
