"""The launch file and YAML agree with the nodes' declared parameters and installed executables.

launch and launch_ros are not on PyPI, so the launch file is checked statically (its AST): the
arguments it declares, the executables it starts, and the parameter names it passes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from event_fm.nodes import perception_params, recorder_node

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "perception.launch.py"
YAML = REPO / "config" / "perception.yaml"
NODE_PARAMS = {"event_fm_perception": perception_params.PARAMS,
               "event_fm_recorder": recorder_node.PARAMS}
YAML_KEY = {name: f"/**/{name}" for name in NODE_PARAMS}  # applies under any namespace


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def _assigned(tree: ast.AST, name: str):
    return next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                and any(getattr(t, "id", None) == name for t in n.targets))


def _kw(call: ast.Call, key: str):
    return next((k.value for k in call.keywords if k.arg == key), None)


def test_launch_arguments_are_declared_with_descriptions():
    tree = ast.parse(LAUNCH.read_text())
    declared = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        name = call.args[0].value
        description = _kw(call, "description")
        assert description is not None, f"launch argument {name} has no description"
        declared[name] = call
    assert set(declared) == {"params_file", "checkpoint", "device", "namespace", "event_topic",
                             "image_topic", "camera_info_topic", "use_sim_time",
                             "fastdds_profile", "record"}
    # empty defaults never override the YAML (an empty image_topic once silenced the recorder)
    for name in ("checkpoint", "device", "fastdds_profile"):
        assert _kw(declared[name], "default_value").value == ""
    # topic arguments are remappings of the nodes' relative names, defaulting to the drivers'
    remapped = {e.value: v.value for e, v in zip(_assigned(tree, "REMAPPED").keys,
                                                 _assigned(tree, "REMAPPED").values, strict=True)}
    assert remapped == {"events": "event_topic", "image": "image_topic",
                        "camera_info": "camera_info_topic"}
    assert _kw(declared["event_topic"], "default_value").value == "/event_camera/events"
    assert _kw(declared["image_topic"], "default_value").value == "/camera/image_raw"


def test_topics_are_relative_names_the_launch_file_remaps():
    """Under namespace:=cam1 a relative name resolves to /cam1/events; the remap of the launch
    file (or ``-r events:=...``) points it at the driver, as image_pipeline's nodes do."""
    data = yaml.safe_load(YAML.read_text())
    recorder = data[YAML_KEY["event_fm_recorder"]]["ros__parameters"]
    perception = data[YAML_KEY["event_fm_perception"]]["ros__parameters"]
    assert perception["event_topic"] == "events"
    assert (recorder["event_topic"], recorder["image_topic"], recorder["camera_info_topic"]) \
        == ("events", "image", "camera_info")
    defaults = {p.name: p.default for p in perception_params.PARAMS}
    assert defaults["event_topic"] == "events"
    tree = ast.parse(LAUNCH.read_text())
    for node in _calls(tree, "Node"):
        assert _kw(node, "remappings") is not None


def test_launch_nodes_exist_and_pass_declared_parameters():
    from distutils.core import run_setup  # noqa: F401 - via setuptools' shim

    import setuptools  # noqa: F401

    tree = ast.parse(LAUNCH.read_text())
    scripts = run_setup(str(REPO / "setup.py"), stop_after="init").entry_points[
        "console_scripts"]
    executables = {s.split("=")[0].strip() for s in scripts}
    nodes = _calls(tree, "Node")
    assert len(nodes) == 2
    for node in nodes:
        assert _kw(node, "executable").value in executables
        name = _kw(node, "name").value
        declared = {p.name for p in NODE_PARAMS[name]}
        overrides = _kw(node, "parameters").elts[1]
        table = overrides.args[1].id  # _overrides(context, TABLE)
        keys = {e.value for e in _assigned(tree, table).elts}
        assert keys <= declared, f"{name}: {keys - declared} are not parameters"


@pytest.mark.parametrize("node", sorted(NODE_PARAMS))
def test_yaml_keys_are_declared_parameters_with_valid_values(node):
    data = yaml.safe_load(YAML.read_text())
    values = data[YAML_KEY[node]]["ros__parameters"]
    specs = {p.name: p for p in NODE_PARAMS[node]}
    assert set(values) <= set(specs), set(values) - set(specs)
    for key, value in values.items():
        assert specs[key].check(value) is None, specs[key].check(value)
        default = specs[key].default
        assert type(value) is type(default) or (isinstance(default, float)
                                                and isinstance(value, int)), key
