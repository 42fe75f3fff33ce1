"""Running the node graph in one process: what ``event-fm run`` and ``event-fm eval`` share
with the launch file (same nodes, same YAML)."""

from __future__ import annotations

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
