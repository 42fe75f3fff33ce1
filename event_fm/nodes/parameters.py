"""Declarative node parameters: one table per node gives names, defaults, descriptions and
valid ranges. Nodes declare from it (with ROS descriptors), the launch-file test checks the
YAML and launch arguments against it, and validation errors name the parameter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    read_only: bool = False

    def descriptor(self) -> ParameterDescriptor:
        desc = ParameterDescriptor(name=self.name, read_only=self.read_only)
        text = self.description
        if self.choices:
            text += f" (one of: {', '.join(map(str, self.choices))})"
        desc.description = text
        if isinstance(self.default, bool) or self.min is None or self.max is None:
            return desc
        if isinstance(self.default, int):
            desc.integer_range = [IntegerRange(from_value=int(self.min), to_value=int(self.max),
                                               step=0)]
        elif isinstance(self.default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(self.min),
                                                            to_value=float(self.max), step=0.0)]
        return desc

    def check(self, value: Any) -> str | None:
        """Why ``value`` is invalid, or None."""
        if self.choices is not None:
            items = value if isinstance(value, list | tuple) else [value]
            bad = [v for v in items if v not in self.choices]
            if bad:
                return f"{self.name}: {bad} not in {list(self.choices)}"
        if isinstance(self.default, list | tuple) and self.default and \
                isinstance(self.default[0], int) and isinstance(value, list | tuple):
            if len(value) != len(self.default):  # a fixed-size integer array (e.g. a tile size)
                return f"{self.name}: expected {len(self.default)} values, got {list(value)}"
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if isinstance(item, int | float) and not isinstance(item, bool):
                if self.min is not None and item < self.min:
                    return f"{self.name}: {item} < minimum {self.min}"
                if self.max is not None and item > self.max:
                    return f"{self.name}: {item} > maximum {self.max}"
        return None


def declare(node, specs: list[ParamSpec]) -> None:
    for spec in specs:
        node.declare_parameter(spec.name, spec.default, spec.descriptor())


def read_and_validate(node, specs: list[ParamSpec]) -> tuple[dict[str, Any], list[str]]:
    values, errors = {}, []
    for spec in specs:
        value = node.get_parameter(spec.name).value
        values[spec.name] = value
        problem = spec.check(value)
        if problem:
            errors.append(problem)
    return values, errors


def reject_invalid_updates(specs: list[ParamSpec]):
    """A set-parameters callback that refuses out-of-range values at run time."""
    by_name = {s.name: s for s in specs}

    def callback(params) -> SetParametersResult:
        for p in params:
            spec = by_name.get(p.name)
            problem = spec.check(p.value) if spec else None
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    return callback


QOS_CHOICES = ("best_effort", "reliable", "sensor_data")
EVENT_MSG_TYPES = ("event_camera_msgs/msg/EventPacket", "event_array_msgs/msg/EventArray",
                   "dvs_msgs/msg/EventArray", "prophesee_event_msgs/msg/EventArray")
