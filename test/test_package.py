"""The package is a well-formed ament_python package and its core never needs ROS."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from setuptools.dist import Distribution

REPO = Path(__file__).resolve().parents[1]
#: Subpackages that are ROS glue; everything else is the core and must import without rclpy.
ROS_LAYERS = ("event_fm.nodes",)


def _setup_distribution() -> Distribution:
    """Evaluate setup.py the way setuptools does, without building anything."""
    from distutils.core import run_setup

    import setuptools  # noqa: F401  (installs its distutils shim first)

    cwd = Path.cwd()
    try:
        os.chdir(REPO)
        return run_setup(str(REPO / "setup.py"), stop_after="init")
    finally:
        os.chdir(cwd)


def _package_xml() -> ET.Element:
    return ET.parse(REPO / "package.xml").getroot()


def test_package_xml_is_format3_ament_python_with_runtime_depends():
    root = _package_xml()
    assert root.get("format") == "3"
    assert root.findtext("export/build_type") == "ament_python"
    depends = {e.text for e in root.findall("depend")}
    for dep in ("rclpy", "std_msgs", "sensor_msgs", "geometry_msgs", "nav_msgs",
                "diagnostic_msgs", "tf2_msgs", "event_camera_msgs"):
        assert dep in depends, dep
    exec_depends = {e.text for e in root.findall("exec_depend")}
    assert {"launch", "launch_ros"} <= exec_depends
    assert "python3-pytest" in {e.text for e in root.findall("test_depend")}
    email = root.find("maintainer").get("email")
    assert re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+", email)
    assert {u.get("type") for u in root.findall("url")} >= {"website", "bugtracker"}


def test_setup_py_agrees_with_package_xml():
    dist = _setup_distribution()
    root = _package_xml()
    assert dist.get_name() == root.findtext("name")
    assert dist.get_version() == root.findtext("version")
    installed = {dest: srcs for dest, srcs in dist.data_files}
    assert installed["share/ament_index/resource_index/packages"] == ["resource/event_fm"]
    assert "package.xml" in installed["share/event_fm"]
    for dest, srcs in dist.data_files:
        for src in srcs:
            assert (REPO / src).is_file(), f"data file {src} -> {dest} does not exist"
    for launch in REPO.glob("launch/*.launch.py"):
        assert str(launch.relative_to(REPO)) in installed["share/event_fm/launch"]
    for cfg in REPO.glob("config/*.yaml"):
        assert str(cfg.relative_to(REPO)) in installed["share/event_fm/config"]
    # Every package installs from the folder of its name: develop mode (colcon
    # --symlink-install) cannot follow a package_dir remap.
    assert "training" in dist.packages and "event_fm.dataset" in dist.packages
    assert not dist.package_dir


def test_every_console_script_resolves():
    dist = _setup_distribution()
    scripts = dist.entry_points["console_scripts"]
    assert any(s.startswith("event-fm ") for s in scripts)
    for spec in scripts:
        name, target = (part.strip() for part in spec.split("="))
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), spec


def test_setup_cfg_installs_scripts_where_ros2_run_looks():
    text = (REPO / "setup.cfg").read_text()
    assert "script_dir=$base/lib/event_fm" in text
    assert "install_scripts=$base/lib/event_fm" in text


def test_package_xml_declares_every_message_package_the_code_imports():
    depends = {e.text for e in _package_xml().findall("depend")}
    used = set()
    for path in (REPO / "event_fm").rglob("*.py"):
        used |= set(re.findall(r"^\s*from (\w+_msgs)\.msg import", path.read_text(), re.M))
    assert used <= depends, f"undeclared message packages: {used - depends}"


def _core_modules() -> list[str]:
    import pkgutil

    import event_fm

    names = ["event_fm"]
    for info in pkgutil.walk_packages(event_fm.__path__, "event_fm."):
        if not info.name.startswith(ROS_LAYERS):
            names.append(info.name)
    return names


def test_core_imports_without_rclpy():
    modules = _core_modules()
    assert "event_fm.io" in modules
    code = (
        "import sys\n"
        "sys.modules['rclpy'] = None\n"  # any 'import rclpy' now raises ImportError
        "import importlib\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "assert sys.modules['rclpy'] is None\n"
        "print('imported', len(sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout


def test_interface_packages_are_hidden_from_colcon():
    assert (REPO / "interfaces" / "COLCON_IGNORE").exists()
    for pkg in ("event_camera_msgs", "event_array_msgs", "dvs_msgs", "prophesee_event_msgs",
                "tf2_msgs"):
        root = ET.parse(REPO / "interfaces" / pkg / "package.xml").getroot()
        assert root.findtext("name") == pkg
        assert "@" in root.find("maintainer").get("email")


@pytest.mark.parametrize("pkg,msg,fields", [
    ("event_camera_msgs", "EventPacket", ["std_msgs/Header header", "uint32 height",
                                         "uint32 width", "uint64 seq", "uint64 time_base",
                                         "string encoding", "bool is_bigendian",
                                         "uint8[] events"]),
    ("dvs_msgs", "Event", ["uint16 x", "uint16 y", "builtin_interfaces/Time ts",
                           "bool polarity"]),
    ("prophesee_event_msgs", "EventArray", ["std_msgs/Header header", "uint32 height",
                                            "uint32 width", "Event[] events"]),
])
def test_interface_fields_match_upstream(pkg, msg, fields):
    text = (REPO / "interfaces" / pkg / "msg" / f"{msg}.msg").read_text()
    declared = [line.split("#")[0].strip() for line in text.splitlines()]
    declared = [" ".join(d.split()) for d in declared if d]
    assert declared == fields


def test_rosbags_definitions_match_interface_packages():
    """The typestore used for bags and the ROS interface packages describe the same wire."""
    from event_fm.io.msg_definitions import DEFINITIONS

    def fields(text: str) -> list[str]:
        lines = [" ".join(line.split("#")[0].split()) for line in text.splitlines()]
        return [line.replace(f"{pkg}/", "") for line in lines if line]

    checked = 0
    for name, text in DEFINITIONS.items():
        pkg, _, msg = name.split("/")
        path = REPO / "interfaces" / pkg / "msg" / f"{msg}.msg"
        if path.exists():
            assert fields(path.read_text()) == fields(text), name
            checked += 1
    assert checked == 7
