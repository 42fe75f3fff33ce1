"""The one experiment grammar: ``event-fm train FAMILY STEP [options]``.

Every training family (distill, forecast, gep, reconstruct) is a table of named :class:`Step`
objects. They all take the same options (:func:`add_common_options`) and write under the same
output-root rule, so a chain is a list of commands and nothing else (no family has its own
shell, output rule or summary writer):

* ROOT = ``--out`` if given, else the config's ``out``, else ``out/<family>``; a family may
  append one name below it (GEP: the encoder checkpoint, so tokens of two encoders never mix);
* a step writes ``ROOT/<step>``, or ``ROOT/<step>_<variant>`` for a step with variants (forecast
  ``fit --model simvp`` -> ``fit_simvp``), and leaves a ``summary.json`` there;
* ``report`` writes the human-facing files into ``--docs``; ``export`` writes the shipped
  checkpoint directory ``--to``.

Family modules import torch only inside their step functions, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from event_fm.common.strict_config import ConfigError, check_keys

#: (flags, argparse keyword arguments) of a step-specific option
Option = tuple[tuple[str, ...], dict[str, Any]]


def option(*flags: str, **kwargs: Any) -> Option:
    """A step-specific argparse option, declared next to the step that reads it."""
    return flags, kwargs


@dataclass(frozen=True)
class Step:
    """One named step of a family: what it does, its runner and its own extra options."""

    help: str
    run: Callable[[Context], dict | None]
    options: tuple[Option, ...] = ()
    #: the variant of a step with several (its folder suffix), from the parsed options
    variant: Callable[[argparse.Namespace], str] | None = None
    #: False where the step folder is a deliverable that must hold nothing else
    summary: bool = True


@dataclass(frozen=True)
class Family:
    """A training family: its default config and its step table."""

    name: str
    help: str
    steps: dict[str, Step]
    config: str | None = None  # default experiment YAML (None: --config is required)
    #: ROOT below the configured output folder (e.g. per encoder checkpoint); None: unchanged
    subroot: Callable[[Context], str] | None = None
    #: torch CPU threads when --threads is not given (None: torch's default)
    threads: int | None = None
    #: the experiment YAML's top-level sections: any other key is a ConfigError naming it and
    #: these (a typo must never be silently ignored); empty: not checked
    sections: tuple[str, ...] = ()


@dataclass
class Context:
    """What a step gets: the resolved config, its output folders and the parsed options."""

    family: Family
    step: str
    config: dict
    base: Path  # --out, else config 'out', else out/<family>
    args: argparse.Namespace
    root: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.base
        if self.family.subroot is not None:
            self.root = self.base / self.family.subroot(self)

    def dir(self, step: str | None = None, variant: str | None = None) -> Path:
        """The output folder of ``step`` (default: this one) under the one naming rule."""
        step = step or self.step
        if variant is None and step == self.step:
            spec = self.family.steps[step]
            variant = spec.variant(self.args) if spec.variant else None
        return self.root / (f"{step}_{variant}" if variant else step)

    @property
    def out(self) -> Path:
        return self.dir()

    def opt(self, name: str, default: Any = None) -> Any:
        """An option's value, ``default`` where it was not given."""
        value = getattr(self.args, name, None)
        return default if value is None else value

    @property
    def docs(self) -> Path:
        return Path(self.opt("docs") or self.config.get("report", {}).get("docs", "docs"))


def add_common_options(parser: argparse.ArgumentParser, family: Family) -> None:
    """The options every step of every family accepts (a step ignores those it has no use
    for, so one chain of commands reads the same in every family)."""
    parser.add_argument("--config", default=family.config, required=family.config is None,
                        help="experiment YAML" + (f" (default {family.config})"
                                                  if family.config else ""))
    parser.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. fit.steps=100")
    parser.add_argument("--out", default=None,
                        help="output root (default: the config's 'out', else out/FAMILY)")
    parser.add_argument("--checkpoint", default=None,
                        help="the model the step reads (default: from the config / ROOT)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--steps", type=int, default=None,
                        help="override the step's optimizer (or sampling) steps")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--docs", default=None,
                        help="report: where the markdown/JSON/plots go (default docs)")
    parser.add_argument("--to", default=None,
                        help="export: the shipped checkpoint directory")


def add_family(sub: argparse._SubParsersAction, family: Family) -> None:
    """``FAMILY STEP`` sub-commands with the common options plus each step's own."""
    parser = sub.add_parser(family.name, help=family.help, description=family.help)
    steps = parser.add_subparsers(dest="step", metavar="STEP", required=True)
    for name, spec in family.steps.items():
        p = steps.add_parser(name, help=spec.help, description=spec.help)
        add_common_options(p, family)
        for flags, kwargs in spec.options:
            p.add_argument(*flags, **kwargs)
        p.set_defaults(_family=family)


def load_config(path: str, overrides: list[str]) -> dict:
    """The experiment YAML with ``--set a.b=value`` overrides (values parsed as YAML)."""
    import yaml

    config = yaml.safe_load(Path(path).read_text()) or {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"bad override {item!r}: use KEY=VALUE")
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return config


def run_step(args: argparse.Namespace) -> int:
    """Run the parsed ``FAMILY STEP``; a missing input or a bad setting is one error line."""
    import sys

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    family: Family = args._family
    spec = family.steps[args.step]
    try:
        threads = args.threads or family.threads
        if threads:
            import torch

            torch.set_num_threads(max(1, threads))
        config = load_config(args.config, args.set)
        if family.sections:
            check_keys(config, family.sections)
        base = Path(args.out or config.get("out") or f"out/{family.name}")
        ctx = Context(family, args.step, config, base, args)
        summary = spec.run(ctx)
    except ConfigError as exc:  # a YAML typo / bad setting: one line, usage-error status
        print(f"event-fm train {family.name} {args.step}: config {args.config}: {exc}",
              file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"event-fm train {family.name} {args.step}: {exc}", file=sys.stderr)
        return 1
    if summary is not None and spec.summary:
        ctx.out.mkdir(parents=True, exist_ok=True)
        (ctx.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return 0


def fit_summary(result, out_dir: Path, label: str) -> dict:
    """The one line and the summary every fit step reports, from the runner's result."""
    from training.runner import read_log

    history = read_log(out_dir / "log.csv")  # the whole run, resumed or not
    first = history[0]["loss"] if history else None
    last = history[-1]["loss"] if history else None
    print(f"{label}: {result.steps_done} steps (resumed from {result.resumed_from}); "
          f"loss {first} -> {last}; checkpoint {out_dir / 'model'}")
    run_config = out_dir / "run_config.json"
    batch = json.loads(run_config.read_text()).get("batch_size") if run_config.exists() else None
    return {"steps": result.steps_done, "resumed_from": result.resumed_from,
            "first_loss": first, "last_loss": last, "batch_size": batch,
            "samples": getattr(result, "samples", None)}
