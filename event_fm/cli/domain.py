"""DDS isolation for the tools: other jobs on a machine publish on the default domain, and one
foreign publisher on the event topic mixes its packets into an evaluation. ``eval`` (and so
``make demo``) runs its node graph in a private domain unless told otherwise; ``run`` and
``replay`` take ``--domain`` (default: the environment's ROS_DOMAIN_ID, as ROS tools do)."""

from __future__ import annotations

import argparse
import os

#: private domains are drawn from here (Fast DDS maps domains up to 232 to UDP ports)
PRIVATE_FIRST, PRIVATE_COUNT = 100, 100


def add_domain_argument(parser: argparse.ArgumentParser, private_by_default: bool) -> None:
    default = "a private one (localhost only)" if private_by_default else "$ROS_DOMAIN_ID"
    parser.add_argument("--domain", type=int, default=None, metavar="ID",
                        help=f"ROS_DOMAIN_ID to use, 0-232 (default: {default})")


def apply_domain(args: argparse.Namespace, private_by_default: bool) -> int | None:
    """Set ROS_DOMAIN_ID for this process (and the nodes it starts) before rclpy starts;
    returns the domain chosen, None when the environment's is kept."""
    domain = args.domain
    if domain is None and private_by_default:
        domain = PRIVATE_FIRST + os.getpid() % PRIVATE_COUNT
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if domain is None:
        return None
    if not 0 <= domain <= 232:
        raise ValueError(f"--domain must be in 0..232, got {domain}")
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    return domain
