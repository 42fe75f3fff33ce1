"""``event-fm train FAMILY STEP [options]`` (also ``python -m training``): the one shell.

Families and their step tables live next to their code (see training/experiment.py for the
grammar, the common options and the output-root rule); ``event-fm train FAMILY --help`` lists a
family's steps. ``torchrun --nproc_per_node N -m training FAMILY fit-step ...`` runs a fit with
DDP.
"""

from __future__ import annotations

import argparse
import importlib

from training.experiment import add_family, load_config, run_step

__all__ = ["FAMILIES", "add_arguments", "load_config", "main", "run"]

#: family name -> module holding its FAMILY step table
FAMILIES: dict[str, str] = {
    "distill": "training.stages.steps",
    "forecast": "training.forecast.steps",
    "gep": "training.gep.steps",
    "reconstruct": "training.reconstruct.steps",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="family", metavar="FAMILY", required=True)
    for module in FAMILIES.values():
        add_family(sub, importlib.import_module(module).FAMILY)


def run(args: argparse.Namespace) -> int:
    return run_step(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="event-fm train", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
