"""Running lifecycle nodes in one process: each node's ``main``, and the node graph that
``event-fm run`` and ``event-fm eval`` share with the launch file (same nodes, same YAML)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
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
    for key in (node_name, f"/{node_name}", f"/**/{node_name}", "/**"):
        if key in data:
            return dict(data[key].get("ros__parameters", {}))
    return {}


def typed_values(values: dict[str, Any], specs: list[ParamSpec]) -> dict[str, Any]:
    """Values checked against the declared names and typed like the defaults (YAML says 1,
    not 1.0)."""
    by_name = {s.name: s for s in specs}
    out = {}
    for name, value in values.items():
        spec = by_name.get(name)
        if spec is None:
            raise ValueError(f"unknown parameter {name!r}")
        if isinstance(spec.default, float) and isinstance(value, int):
            value = float(value)
        out[name] = value
    return out


def overrides(values: dict[str, Any], specs: list[ParamSpec]) -> list[Parameter]:
    """rclpy parameter overrides, typed like the declared defaults."""
    return [Parameter(name, value=value) for name, value in typed_values(values, specs).items()]


class TransitionFailed(RuntimeError):
    """A node refused a start-up transition; ``exit_code`` is what its ``main`` returns
    (2: configure, 3: activate). The node's log says why."""

    def __init__(self, node_name: str, step: str, exit_code: int) -> None:
        super().__init__(f"{node_name}: {step} failed (see log)")
        self.exit_code = exit_code


def run_lifecycle_nodes(factories: Sequence[Callable[[], Any]], stop: threading.Event,
                        args: list[str] | None = None, autostart: bool = True) -> None:
    """Start-up and shutdown every node main shares: init rclpy with its signal handlers off
    (the context must outlive Ctrl-C so deactivation can flush and release; ``stop`` is set by
    :func:`~event_fm.nodes.ros_types.install_stop_handlers`), create the nodes, configure and
    activate them in order (unless ``autostart`` is off: lifecycle services drive them), spin
    one executor until ``stop``, then stop workers, deactivate what was activated and destroy.

    Raises TransitionFailed for the first node that refuses a transition."""
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.signals import SignalHandlerOptions

    from event_fm.nodes.ros_types import make_executor, spin_until_stopped

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    executor = make_executor()
    nodes, active = [], []
    try:
        for factory in factories:
            nodes.append(factory())
            executor.add_node(nodes[-1])
        for node in nodes if autostart else []:
            for step, code in ((node.trigger_configure, 2), (node.trigger_activate, 3)):
                if step() != TransitionCallbackReturn.SUCCESS:
                    raise TransitionFailed(node.get_name(), step.__name__, code)
            active.append(node)
        spin_until_stopped(stop, executor=executor)
    finally:
        for node in nodes:
            if hasattr(node, "stop_worker"):
                node.stop_worker()  # before anything it publishes with is destroyed
            if node in active:
                try:
                    node.trigger_deactivate()  # flushes open files, releases the device
                except Exception:  # noqa: BLE001 - shutting down regardless
                    pass
            node.destroy_node()
        executor.shutdown()
        if rclpy.ok():
            rclpy.shutdown()


def run_graph(perception: dict[str, Any], recorder: dict[str, Any] | None,
              stop: threading.Event, remaps: dict[str, str] | None = None) -> None:
    """perception_node (and recorder_node when given its parameters) in one executor until
    ``stop`` is set (:func:`run_lifecycle_nodes`); ``remaps`` (relative name -> topic) as
    ``--ros-args -r name:=topic`` would, for both nodes.

    Raises RuntimeError naming the node whose transition failed (its log says why)."""
    from event_fm.nodes import perception_params, recorder_node
    from event_fm.nodes.perception_node import PerceptionNode

    factories: list[Callable[[], Any]] = [lambda: PerceptionNode(
        parameter_overrides=overrides(perception, perception_params.PARAMS))]
    if recorder is not None:
        factories.append(lambda: recorder_node.RecorderNode(
            parameter_overrides=overrides(recorder, recorder_node.PARAMS)))
    args = ["event_fm_run"]
    if remaps:
        args.append("--ros-args")
        for name, topic in remaps.items():
            args += ["-r", f"{name}:={topic}"]
    run_lifecycle_nodes(factories, stop, args=args)
