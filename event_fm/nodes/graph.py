"""Running the node graph in one process: what ``event-fm run`` and ``event-fm eval`` share
with the launch file (same nodes, same YAML)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import yaml
from rclpy.parameter import Parameter

from event_fm.nodes.parameters import ParamSpec


def yaml_parameters(path: str | Path | None, node_name: str) -> dict[str, Any]:
    """The ``ros__parameters`` of one node in a ROS 2 parameter YAML (empty if absent)."""
    if not path:
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    for key in (node_name, f"/{node_name}", "/**"):
        if key in data:
            return dict(data[key].get("ros__parameters", {}))
    return {}


def overrides(values: dict[str, Any], specs: list[ParamSpec]) -> list[Parameter]:
    """rclpy parameter overrides, typed like the declared defaults (YAML says 1, not 1.0)."""
    by_name = {s.name: s for s in specs}
    out = []
    for name, value in values.items():
        spec = by_name.get(name)
        if spec is None:
            raise ValueError(f"unknown parameter {name!r}")
        if isinstance(spec.default, float) and isinstance(value, int):
            value = float(value)
        out.append(Parameter(name, value=value))
    return out


def run_graph(perception: dict[str, Any], recorder: dict[str, Any] | None,
              stop: threading.Event) -> None:
    """Configure and activate perception_node (and recorder_node when given its parameters) in
    one executor, spin until ``stop`` is set, then deactivate and destroy them in order.

    Raises RuntimeError naming the node whose transition failed (its log says why)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.signals import SignalHandlerOptions

    from event_fm.nodes import perception_params, recorder_node
    from event_fm.nodes.perception_node import PerceptionNode
    from event_fm.nodes.ros_types import spin_until_stopped

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    executor = SingleThreadedExecutor()
    nodes = []
    try:
        nodes.append(PerceptionNode(parameter_overrides=overrides(perception,
                                                                  perception_params.PARAMS)))
        if recorder is not None:
            nodes.append(recorder_node.RecorderNode(
                parameter_overrides=overrides(recorder, recorder_node.PARAMS)))
        for node in nodes:
            executor.add_node(node)
            for step in (node.trigger_configure, node.trigger_activate):
                if step() != TransitionCallbackReturn.SUCCESS:
                    raise RuntimeError(f"{node.get_name()}: {step.__name__} failed (see log)")
        spin_until_stopped(stop, executor=executor)
    finally:
        for node in nodes:
            try:
                if hasattr(node, "stop_worker"):
                    node.stop_worker()
                node.trigger_deactivate()
            except Exception:  # noqa: BLE001 - inactive nodes refuse; fine at shutdown
                pass
            node.destroy_node()
        executor.shutdown()
        if rclpy.ok():
            rclpy.shutdown()
