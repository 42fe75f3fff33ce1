"""perception_node's engine from its parameters: the model, then the runners with their own
checkpoints (event matcher, reconstruction, forecaster) that the parameters ask for.

One function for both places an engine lives: the node's own process, and the compute process
that runs the windows when ``inference_process`` is on (it receives the parameters, not the
engine, and builds its own)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from event_fm.models.checkpoint import embedded_checkpoint
from event_fm.pipeline.engine import EngineConfig, PerceptionEngine


class EngineBuildError(RuntimeError):
    """A checkpoint or option the parameters name cannot be used (the message says which)."""


@dataclass
class BuiltEngine:
    engine: PerceptionEngine
    checkpoint: Path
    notes: list[str] = field(default_factory=list)  # fallbacks taken, for the node's log


def default_checkpoint() -> Path:
    """The embedded default model: in the source tree, else in the installed share dir."""
    return embedded_checkpoint("default")


def engine_config(values: dict) -> EngineConfig:
    v = values
    return EngineConfig(window_mode=v["window_mode"], window_ms=v["window_ms"],
                        window_events=v["window_events"], output_rate_hz=v["output_rate_hz"],
                        max_window_age_ms=v["max_window_age_ms"],
                        buffer_max_events=v["buffer_max_events"], memory_hold=v["memory_hold"],
                        memory_hold_min_events=v["memory_hold_min_events"],
                        device=v["device"], half=v["half"], threads=v["threads"],
                        tile_size=tuple(v["tile_size"]) if all(v["tile_size"]) else None)


def build_engine(values: dict) -> BuiltEngine:
    """Everything the node's ``heads`` and checkpoint parameters ask for, registered on one
    engine. Raises EngineBuildError naming what could not be loaded."""
    checkpoint = Path(values["checkpoint"]) if values["checkpoint"] else default_checkpoint()
    try:
        engine = PerceptionEngine.from_checkpoint(checkpoint, engine_config(values),
                                                  values["event_topic"])
    except Exception as exc:  # noqa: BLE001 - any load failure is the checkpoint's
        raise EngineBuildError(f"cannot load model from {checkpoint}: {exc}") from exc
    built = BuiltEngine(engine, checkpoint)
    _add_matcher(built, values)
    if "reconstruction" in values["heads"]:
        _add_reconstruction(engine, values)
    if "forecast" in values["heads"]:
        _add_forecaster(engine, values)
    return built


def build_compute_engine(values: dict) -> PerceptionEngine:
    """:func:`build_engine` for a compute process (which only needs the engine)."""
    return build_engine(values).engine


def _add_matcher(built: BuiltEngine, values: dict) -> None:
    """The event matcher's pose (and image pose) outputs, per ``pose_source``."""
    image_pose = "image_pose" in values["heads"]
    if values["pose_source"] == "head" and not image_pose:
        return
    from event_fm.models.event_matcher import load_event_matcher
    from event_fm.models.xfeat import load_xfeat
    from event_fm.nodes.image_msgs import read_image_file
    from event_fm.pipeline.matcher_outputs import matcher_outputs

    engine = built.engine
    path = values["event_matcher_checkpoint"] or None
    try:
        matcher = load_event_matcher(path, engine.device)
    except (OSError, ValueError) as exc:
        if values["pose_source"] == "auto" and not image_pose:
            built.notes.append(f"no event matcher ({exc}); ~/pose uses the model's head")
            return
        raise EngineBuildError(f"cannot load the event matcher {path or ''}: {exc}") from exc
    teacher = keyframe = None
    try:
        if image_pose:
            teacher = load_xfeat(engine.device)
            if values["image_pose_reference"] == "keyframe":
                keyframe = read_image_file(values["keyframe_image"])
            elif not values["image_topic"]:
                raise ValueError("image_pose relative to the latest frame needs image_topic")
    except (OSError, ValueError, RuntimeError) as exc:
        raise EngineBuildError(f"image_pose: {exc}") from exc
    outputs = matcher_outputs(matcher, teacher, keyframe, image_pose,
                              max_side=values["matcher_max_side"])
    if values["pose_source"] == "head":  # the matcher serves only image_pose
        outputs = [o for o in outputs if o.name != "pose"]
    engine.register(*outputs)


def _add_reconstruction(engine: PerceptionEngine, values: dict) -> None:
    from event_fm.pipeline.reconstruction import ReconstructionOutput, ReconstructionRunner

    path = values["reconstruction_checkpoint"] or None
    try:
        engine.register(ReconstructionOutput(ReconstructionRunner.from_checkpoint(
            path, engine.device, engine.half)))
    except Exception as exc:  # noqa: BLE001 - activation fails with the reason
        raise EngineBuildError(f"cannot load reconstruction generator {path or ''}: "
                               f"{exc}") from exc


def _add_forecaster(engine: PerceptionEngine, values: dict) -> None:
    from event_fm.nodes.forecast_output import load_live_forecaster
    from event_fm.pipeline.forecast import forecast_outputs

    try:
        engine.register(*forecast_outputs(load_live_forecaster(values, engine.device)))
    except Exception as exc:  # noqa: BLE001 - activation fails with the reason
        raise EngineBuildError(f"cannot load forecaster {values['forecast_checkpoint']}: "
                               f"{exc}") from exc
