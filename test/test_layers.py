"""The layers a reader sees in the folder names hold in the code: every import in every module
(function-level imports included) points to the same or a lower layer, and rclpy is imported
only under event_fm/nodes. Parsed from source, so a lazy import cannot hide an upward edge."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Lowest first. Layers of one rank do not import each other.
LAYERS: dict[str, int] = {
    "event_fm.common": -1,
    "event_fm.io": 0,
    "event_fm.representations": 1,
    "event_fm.sim": 2,
    "event_fm.models": 2,
    "event_fm.pipeline": 3,
    "event_fm.dataset": 4,
    "event_fm.evaluation": 5,
    "training": 6,
    "event_fm.nodes": 7,
    "event_fm.cli": 8,
}
ROS_ONLY_IN = ("event_fm.nodes",)
ROS_MODULES = ("rclpy", "launch", "launch_ros")  # ament_index_python is a plain file lookup


def _layer(module: str) -> str | None:
    for name in sorted(LAYERS, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return None


def _module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return found


def _sources(root: Path = REPO) -> list[Path]:
    return sorted([*root.glob("event_fm/**/*.py"), *root.glob("training/**/*.py")])


def _violations(root: Path = REPO) -> list[str]:
    bad = []
    for path in _sources(root):
        module = _module_name(path, root)
        own = _layer(module)
        for line, target in _imports(path, root):
            where = f"{path.relative_to(root)}:{line} imports {target}"
            if target.split(".")[0] in ROS_MODULES and not (
                    own and own.startswith(ROS_ONLY_IN)):
                bad.append(f"{where} (ROS outside event_fm/nodes)")
            other = _layer(target)
            if own is None or other is None or other == own:
                continue
            if LAYERS[other] >= LAYERS[own]:
                bad.append(f"{where} ({own} may not import {other})")
    return bad


def test_every_module_belongs_to_a_layer():
    orphans = [str(p.relative_to(REPO)) for p in _sources()
               if _layer(_module_name(p)) is None and _module_name(p) != "event_fm"]
    assert not orphans


def test_no_upward_import_and_ros_only_in_nodes():
    assert _violations() == []


@pytest.mark.parametrize("source,expected", [
    ("from event_fm.pipeline.engine import PerceptionEngine\n",
     "event_fm.models may not import event_fm.pipeline"),
    ("def f():\n    import training.cli\n", "event_fm.models may not import training"),
    ("import rclpy\n", "ROS outside event_fm/nodes"),
    ("from ..pipeline import engine\n", "event_fm.models may not import event_fm.pipeline"),
])
def test_the_check_sees_an_upward_import(tmp_path, source, expected):
    """The checker itself: a planted upward or ROS import is reported."""
    planted = tmp_path / "event_fm" / "models" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text(source)
    assert [expected in v for v in _violations(tmp_path)] == [True]
