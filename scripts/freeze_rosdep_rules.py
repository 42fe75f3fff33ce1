"""Freeze the rosdep facts package.xml depends on into test data, from a ros/rosdistro checkout:
the rosdep rules of every non-ROS key (Ubuntu), and for Jazzy and Kilted which ROS packages the
distribution releases. The test then checks package.xml offline, as ``rosdep install`` would.

usage: python scripts/freeze_rosdep_rules.py ROSDISTRO_CHECKOUT [OUT]
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DISTROS = ("jazzy", "kilted")
DEPEND_TAGS = ("depend", "exec_depend", "build_depend", "test_depend", "buildtool_depend")


def package_keys(package_xml: Path = REPO / "package.xml") -> list[str]:
    root = ET.parse(package_xml).getroot()
    return sorted({e.text.strip() for tag in DEPEND_TAGS for e in root.iter(tag)})


def released_packages(distribution: dict) -> set[str]:
    out = set()
    for name, repo in distribution.get("repositories", {}).items():
        release = repo.get("release")
        if release:
            out.update(release.get("packages", [name]))
    return out


def main(argv: list[str]) -> int:
    checkout = Path(argv[1])
    out = Path(argv[2]) if len(argv) > 2 else REPO / "test" / "data" / "rosdep" / "rules.yaml"
    keys = package_keys()
    rules: dict = {}
    for name in ("base.yaml", "python.yaml"):
        data = yaml.safe_load((checkout / "rosdep" / name).read_text())
        rules.update({k: {"ubuntu": v.get("ubuntu")} for k, v in data.items() if k in keys})
    frozen = {"source": "ros/rosdistro rosdep/{base,python}.yaml and */distribution.yaml",
              "rosdep": rules, "released": {}}
    for distro in DISTROS:
        released = released_packages(
            yaml.safe_load((checkout / distro / "distribution.yaml").read_text()))
        frozen["released"][distro] = sorted(k for k in keys if k in released)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(frozen, sort_keys=True))
    print(f"{out}: {len(rules)} rosdep rules, released: "
          + ", ".join(f"{d} {len(v)}" for d, v in frozen["released"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
