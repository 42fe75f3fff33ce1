"""Every dependency key in package.xml resolves as ``rosdep install --from-paths src`` would on
Ubuntu 24.04 (noble) for ROS 2 Jazzy and Kilted: a ROS package the distribution releases, or a
rosdep rule with an apt or pip entry for noble. Checked against a frozen copy of the rules
(test/data/rosdep/rules.yaml, made by scripts/freeze_rosdep_rules.py from ros/rosdistro): a key
nobody can resolve (the old event_fm_msgs) makes rosdep fail on every robot."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from freeze_rosdep_rules import DISTROS, package_keys  # noqa: E402

RULES = yaml.safe_load((REPO / "test" / "data" / "rosdep" / "rules.yaml").read_text())
UBUNTU = "noble"  # Jazzy and Kilted's Ubuntu


def resolves_on_ubuntu(rule) -> bool:
    ubuntu = (rule or {}).get("ubuntu")
    if isinstance(ubuntu, dict) and "pip" not in ubuntu:
        ubuntu = ubuntu.get(UBUNTU, ubuntu.get("*"))
    if isinstance(ubuntu, dict):
        return bool(ubuntu.get("pip", {}).get("packages"))
    return bool(ubuntu)


@pytest.mark.parametrize("distro", DISTROS)
def test_every_package_xml_key_resolves(distro):
    released = set(RULES["released"][distro])
    unresolved = [k for k in package_keys()
                  if k not in released and not resolves_on_ubuntu(RULES["rosdep"].get(k))]
    assert unresolved == [], f"rosdep cannot resolve on {distro}: {unresolved}"


def test_the_check_rejects_what_rosdep_rejects():
    assert not resolves_on_ubuntu(None)  # an unknown key (event_fm_msgs)
    assert not resolves_on_ubuntu({"ubuntu": {"*": ["x"], "noble": None}})
    assert resolves_on_ubuntu({"ubuntu": {"pip": {"packages": ["timm"]}}})
    assert resolves_on_ubuntu({"ubuntu": {"*": ["python3-torch"], "focal": None}})
